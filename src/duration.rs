//! Durations as scenarios write them (`"250ms"`, `"2s"`) and the
//! distributions of hold and think times drawn from a run's seed.

use std::time::Duration;

use rand::Rng;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Parses `"250ms"`, `"2s"`, `"1.5s"`, `"3m"`, `"500us"`, `"0s"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{text:?} has no unit: write e.g. \"250ms\", \"2s\" or \"1m\""))?;
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number: write e.g. \"250ms\""))?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ns, us, ms, s, m or h"
            ));
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("{text:?} is too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A duration written as a string with a unit in the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d).map_err(|_| {
            de::Error::custom("expected a duration string such as \"250ms\" or \"2s\"")
        })?;
        parse_duration(&text).map(Dur).map_err(de::Error::custom)
    }
}

/// Hold and think times: fixed, uniform between two bounds, or exponential
/// around a mean (bursty arrivals).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "dist", rename_all = "lowercase")]
pub enum TimeDist {
    /// Always the same.
    Fixed {
        /// The time.
        #[serde(with = "as_ms")]
        value: Duration,
    },
    /// Uniform in `[min, max]`.
    Uniform {
        /// Lower bound.
        #[serde(with = "as_ms")]
        min: Duration,
        /// Upper bound.
        #[serde(with = "as_ms")]
        max: Duration,
    },
    /// Exponential with this mean, capped at ten means.
    Exponential {
        /// The mean.
        #[serde(with = "as_ms")]
        mean: Duration,
    },
}

mod as_ms {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }
}

impl TimeDist {
    /// Zero time.
    pub const ZERO: TimeDist = TimeDist::Fixed {
        value: Duration::ZERO,
    };

    /// Draws one time.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> Duration {
        match *self {
            TimeDist::Fixed { value } => value,
            TimeDist::Uniform { min, max } => {
                if max <= min {
                    min
                } else {
                    Duration::from_secs_f64(rng.random_range(min.as_secs_f64()..=max.as_secs_f64()))
                }
            }
            TimeDist::Exponential { mean } => {
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                let x = (-u.ln()).min(10.0);
                Duration::from_secs_f64(mean.as_secs_f64() * x)
            }
        }
    }

    /// The largest time it can give.
    pub fn max(&self) -> Duration {
        match *self {
            TimeDist::Fixed { value } => value,
            TimeDist::Uniform { max, .. } => max,
            TimeDist::Exponential { mean } => mean * 10,
        }
    }

    /// Its mean.
    pub fn mean(&self) -> Duration {
        match *self {
            TimeDist::Fixed { value } => value,
            TimeDist::Uniform { min, max } => (min + max) / 2,
            TimeDist::Exponential { mean } => mean,
        }
    }
}

impl<'de> Deserialize<'de> for TimeDist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            dist: Option<String>,
            min: Option<Dur>,
            max: Option<Dur>,
            mean: Option<Dur>,
        }
        impl<'de> Visitor<'de> for V {
            type Value = TimeDist;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a duration (\"5ms\"), { min = \"1ms\", max = \"10ms\" } or { dist = \"exponential\", mean = \"5ms\" }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TimeDist, E> {
                parse_duration(v)
                    .map(|value| TimeDist::Fixed { value })
                    .map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TimeDist, A::Error> {
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let dist = t.dist.as_deref().unwrap_or(if t.mean.is_some() {
                    "exponential"
                } else {
                    "uniform"
                });
                match (dist, t.min, t.max, t.mean) {
                    ("uniform", Some(min), Some(max), None) => {
                        if min > max {
                            Err(de::Error::custom(format!(
                                "min ({:?}) is larger than max ({:?})",
                                min.0, max.0
                            )))
                        } else {
                            Ok(TimeDist::Uniform {
                                min: min.0,
                                max: max.0,
                            })
                        }
                    }
                    ("exponential", None, None, Some(mean)) => {
                        Ok(TimeDist::Exponential { mean: mean.0 })
                    }
                    ("fixed", ..) => Err(de::Error::custom(
                        "a fixed time is written as a plain string, e.g. hold = \"5ms\"",
                    )),
                    ("uniform", ..) => Err(de::Error::custom(
                        "a uniform time needs exactly min and max, e.g. { min = \"1ms\", max = \"10ms\" }",
                    )),
                    ("exponential", ..) => Err(de::Error::custom(
                        "an exponential time needs exactly mean, e.g. { dist = \"exponential\", mean = \"5ms\" }",
                    )),
                    (other, ..) => Err(de::Error::custom(format!(
                        "unknown dist {other:?}: use \"uniform\" or \"exponential\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10 parsecs").is_err());
    }

    #[test]
    fn samples_stay_in_bounds() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let d = TimeDist::Uniform {
            min: Duration::from_millis(1),
            max: Duration::from_millis(3),
        };
        for _ in 0..1000 {
            let s = d.sample(&mut rng);
            assert!(s >= Duration::from_millis(1) && s <= Duration::from_millis(3));
        }
        let e = TimeDist::Exponential {
            mean: Duration::from_millis(1),
        };
        for _ in 0..1000 {
            assert!(e.sample(&mut rng) <= Duration::from_millis(10));
        }
    }
}
