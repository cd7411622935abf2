//! The `chat-server` binary: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    chat_server::cli::main()
}
