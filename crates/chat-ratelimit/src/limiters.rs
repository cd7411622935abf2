//! The three keyed limiters of the service, built from the configuration.

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use chat_config::RateLimitSettings;
use governor::clock::{Clock, DefaultClock};

use crate::error::RateLimitError;
use crate::keyed::KeyedLimiter;

/// The service's keyed limiters (PROTOCOL §2 defaults: 100 user messages/min per user,
/// 20 admin requests/min per admin, 60 public requests/min per client IP), sharing one
/// key cap and one cleanup interval. Generic over the clock only so tests can drive
/// it; the service uses the default (monotonic) clock.
#[derive(Debug)]
pub struct RateLimiters<C: Clock = DefaultClock> {
    /// Chat messages, keyed by user id.
    pub user_messages: KeyedLimiter<String, C>,
    /// Admin API requests, keyed by admin user id.
    pub admin: KeyedLimiter<String, C>,
    /// Public endpoints (`/shared/{token}`), keyed by client IP.
    pub public: KeyedLimiter<IpAddr, C>,
    /// How often [`RateLimiters::cleanup`] should run.
    cleanup_interval: Duration,
}

fn non_zero_u32(field: &'static str, value: u32) -> Result<NonZeroU32, RateLimitError> {
    NonZeroU32::new(value).ok_or(RateLimitError::Zero { field })
}

impl RateLimiters<DefaultClock> {
    /// Builds the limiters; a zero quota, cap or interval is refused (config validation
    /// already refuses them, this only guards hand-built settings).
    pub fn from_settings(settings: &RateLimitSettings) -> Result<Self, RateLimitError> {
        Self::from_settings_with_clock(settings, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimiters<C> {
    /// Like [`RateLimiters::from_settings`] with an explicit clock (tests).
    pub fn from_settings_with_clock(
        settings: &RateLimitSettings,
        clock: C,
    ) -> Result<Self, RateLimitError> {
        let max_keys =
            NonZeroUsize::new(settings.max_tracked_keys).ok_or(RateLimitError::Zero {
                field: "rate_limits.max_tracked_keys",
            })?;
        if settings.cleanup_interval.is_zero() {
            return Err(RateLimitError::Zero {
                field: "rate_limits.cleanup_interval",
            });
        }
        Ok(Self {
            user_messages: KeyedLimiter::with_clock(
                non_zero_u32(
                    "rate_limits.user_messages_per_minute",
                    settings.user_messages_per_minute,
                )?,
                max_keys,
                clock.clone(),
            ),
            admin: KeyedLimiter::with_clock(
                non_zero_u32(
                    "rate_limits.admin_requests_per_minute",
                    settings.admin_requests_per_minute,
                )?,
                max_keys,
                clock.clone(),
            ),
            public: KeyedLimiter::with_clock(
                non_zero_u32(
                    "rate_limits.public_requests_per_minute",
                    settings.public_requests_per_minute,
                )?,
                max_keys,
                clock,
            ),
            cleanup_interval: settings.cleanup_interval,
        })
    }
}

impl<C: Clock> RateLimiters<C> {
    /// How often the cleanup task runs.
    pub fn cleanup_interval(&self) -> Duration {
        self.cleanup_interval
    }

    /// Drops idle keys from all three limiters; returns how many were dropped.
    pub fn cleanup(&self) -> usize {
        self.user_messages.cleanup() + self.admin.cleanup() + self.public.cleanup()
    }
}
