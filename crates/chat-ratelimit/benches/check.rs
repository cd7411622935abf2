//! Cost of one keyed limiter check (the per-message overhead of rate limiting).
//! Run with `cargo bench -p chat-ratelimit`; the result is recorded in the crate docs
//! (`keyed` module).

#[cfg(not(loom))]
mod bench {
    use std::hint::black_box;
    use std::net::IpAddr;
    use std::num::{NonZeroU32, NonZeroUsize};

    use chat_ratelimit::KeyedLimiter;
    use criterion::Criterion;

    const MAX_KEYS: NonZeroUsize = NonZeroUsize::new(100_000).unwrap();

    pub fn check(c: &mut Criterion) {
        // A quota that never runs out: measures the admitted path.
        let allowed: KeyedLimiter<String> = KeyedLimiter::new(NonZeroU32::MAX, MAX_KEYS);
        let user = "0f8e2c1a-6b7d-4e3f-9a2b-1c0d9e8f7a6b".to_owned();
        c.bench_function("check_allowed_string_key", |b| {
            b.iter(|| black_box(allowed.check(black_box(&user))))
        });

        // A quota of 1: after the first call every check is refused.
        let limited: KeyedLimiter<String> = KeyedLimiter::new(NonZeroU32::MIN, MAX_KEYS);
        let _ = limited.check(&user);
        c.bench_function("check_limited_string_key", |b| {
            b.iter(|| black_box(limited.check(black_box(&user))))
        });

        // Per-IP limiter with 10 000 tracked keys, cycling through them.
        let public: KeyedLimiter<IpAddr> = KeyedLimiter::new(NonZeroU32::MAX, MAX_KEYS);
        let ips: Vec<IpAddr> = (0..10_000_u32)
            .map(|i| IpAddr::from((0x0a00_0000_u32 + i).to_be_bytes()))
            .collect();
        for ip in &ips {
            let _ = public.check(ip);
        }
        let mut i = 0;
        c.bench_function("check_ip_key_10k_tracked", |b| {
            b.iter(|| {
                i = (i + 1) % ips.len();
                black_box(public.check(black_box(&ips[i])))
            })
        });
    }
}

#[cfg(not(loom))]
criterion::criterion_group!(benches, bench::check);
#[cfg(not(loom))]
criterion::criterion_main!(benches);

#[cfg(loom)]
fn main() {}
