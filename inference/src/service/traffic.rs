//! Traffic between the loaded versions of one model, for requests that name no version: a
//! weighted split (a canary takes a few percent, the default version the rest), sticky by a
//! request header when one is given (the same key always meets the same version, on every
//! replica, across restarts), and shadowing: a sample of requests also runs on a candidate
//! version whose answers are compared with the served ones, counted, and thrown away.
//!
//! A request is placed in one of 10,000 buckets: by a hash of its key when it has one, else by
//! a counter scrambled so that consecutive requests spread evenly; the canary shares are
//! ranges of buckets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::errors::PredictError;
use super::imported::ImportedService;
use crate::ImportedRow;
use crate::metrics as m;
use ember_model::versions::resolve_version;

/// Buckets a request can fall in: shares are set to a hundredth of a percent.
const BUCKETS: u64 = 10_000;

/// How unversioned requests are shared out, as the flags or the repository API set it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    /// Versions (in full, or a major) and the percent of unversioned requests each takes; the
    /// default version takes the rest.
    pub canary: Vec<(String, f64)>,
    /// A version, and the percent of unversioned requests also sent to it for comparison.
    pub shadow: Option<(String, f64)>,
}

impl Traffic {
    /// Whether any request leaves the default version's plain path.
    pub fn is_empty(&self) -> bool {
        self.canary.is_empty() && self.shadow.is_none()
    }
}

/// Traffic resolved against the versions loaded (indices into them, newest first).
#[derive(Debug, Clone, Default)]
pub(crate) struct Routes {
    /// Each canary version's index and the end of its bucket range.
    split: Vec<(usize, u64)>,
    /// The shadow version's index and its share in buckets.
    shadow: Option<(usize, u64)>,
}

fn buckets(percent: f64) -> u64 {
    (percent * (BUCKETS as f64) / 100.0).round() as u64
}

fn percent_ok(percent: f64) -> bool {
    percent.is_finite() && percent > 0.0 && percent <= 100.0
}

impl Routes {
    /// `traffic` over `versions` (semantic versions, newest first) with `default` the index of
    /// the default version; an error says what does not fit.
    pub(crate) fn resolve(
        versions: &[semver::Version],
        default: usize,
        traffic: &Traffic,
    ) -> Result<Self, String> {
        let find = |name: &str, what: &str| {
            let version = resolve_version(name, versions).ok_or_else(|| {
                format!("the {what} version {name} is not among the versions the policy loads")
            })?;
            versions
                .iter()
                .position(|v| v == version)
                .ok_or_else(|| format!("the {what} version {name} is not loaded"))
        };
        let mut split = Vec::new();
        let mut end = 0;
        for (name, percent) in &traffic.canary {
            if !percent_ok(*percent) {
                return Err(format!(
                    "canary {name}: {percent} is not a percentage above 0 and at most 100"
                ));
            }
            let index = find(name, "canary")?;
            if index == default {
                return Err(format!(
                    "canary {name} is the default version, which takes the rest already"
                ));
            }
            end += buckets(*percent);
            split.push((index, end));
        }
        if end > BUCKETS {
            return Err("the canary shares add up to more than 100 %".into());
        }
        let shadow = match &traffic.shadow {
            None => None,
            Some((name, percent)) if percent_ok(*percent) => {
                Some((find(name, "shadow")?, buckets(*percent)))
            }
            Some((name, percent)) => {
                return Err(format!(
                    "shadow {name}: {percent} is not a percentage above 0 and at most 100"
                ));
            }
        };
        Ok(Self { split, shadow })
    }

    /// The version a request meets and the one it is shadowed to, if any (never the one it
    /// meets): by its `key`'s hash, else by `counter`.
    pub(crate) fn pick(
        &self,
        default: usize,
        key: Option<&str>,
        counter: &AtomicU64,
    ) -> (usize, Option<usize>) {
        if self.split.is_empty() && self.shadow.is_none() {
            return (default, None);
        }
        let draw = match key {
            Some(key) => mix(fnv1a(key.as_bytes())),
            None => mix(counter.fetch_add(1, Ordering::Relaxed)),
        };
        let bucket = draw % BUCKETS;
        let serve = self
            .split
            .iter()
            .find(|(_, end)| bucket < *end)
            .map_or(default, |(index, _)| *index);
        // A second, independent draw from the same number, so shadowing is not tied to the split.
        let shadow_bucket = (draw / BUCKETS) % BUCKETS;
        let shadow = self
            .shadow
            .filter(|(index, share)| shadow_bucket < *share && *index != serve)
            .map(|(index, _)| index);
        (serve, shadow)
    }
}

/// FNV-1a: a stable hash of a sticky key, the same on every replica and release.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// splitmix64's finaliser: spreads consecutive counters (and similar keys) over all buckets.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A candidate version a request is also sent to.
pub struct Shadow {
    service: Arc<ImportedService>,
}

impl Shadow {
    pub(crate) fn new(service: Arc<ImportedService>) -> Self {
        Self { service }
    }

    /// `served`'s answers for `rows`, exactly as without a shadow; once they are in, the same
    /// rows go to the shadow version in the background and the two answers are compared.
    pub async fn beside(
        self,
        served: &ImportedService,
        rows: Vec<ImportedRow>,
    ) -> Result<Vec<Box<[f32]>>, PredictError> {
        let copy = rows.clone();
        let answers = served.predict(rows).await?;
        let (expected, served) = (answers.clone(), served.version().to_string());
        tokio::spawn(async move { self.compare(&served, copy, &expected).await });
        Ok(answers)
    }

    /// Count, per row, whether the shadow version's label agrees with the served one (outputs
    /// with labels), and record the largest absolute difference of the values.
    async fn compare(self, served: &str, rows: Vec<ImportedRow>, expected: &[Box<[f32]>]) {
        let config = self.service.config();
        let labels = [
            ("model", config.name.clone()),
            ("served_version", served.to_string()),
            ("shadow_version", config.version.clone()),
        ];
        let outcome = |outcome: &'static str, n: usize| {
            let mut labels = labels.to_vec();
            labels.push(("outcome", outcome.to_string()));
            metrics::counter!(m::SHADOW_COMPARISONS, &labels).increment(n as u64);
        };
        let got = match self.service.predict(rows).await {
            Ok(got) => got,
            Err(_) => return outcome("failed", expected.len()),
        };
        let difference = metrics::histogram!(m::SHADOW_DIFFERENCE, &labels);
        for (mine, theirs) in got.iter().zip(expected) {
            let largest = mine
                .iter()
                .zip(theirs.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            difference.record(f64::from(largest));
            let mut offset = 0;
            let mut agree = None;
            for output in &config.outputs {
                let width = output.row_len();
                if !output.labels.is_empty() {
                    let best = |v: &[f32]| {
                        v.get(offset..offset + width).and_then(|v| {
                            v.iter()
                                .enumerate()
                                .max_by(|a, b| a.1.total_cmp(b.1))
                                .map(|(i, _)| i)
                        })
                    };
                    let same = best(mine) == best(theirs);
                    agree = Some(agree.unwrap_or(true) && same);
                }
                offset += width;
            }
            match agree {
                Some(true) => outcome("agree", 1),
                Some(false) => outcome("disagree", 1),
                None => outcome("compared", 1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(names: &[&str]) -> Vec<semver::Version> {
        names
            .iter()
            .map(|n| semver::Version::parse(n).unwrap())
            .collect()
    }

    #[test]
    fn a_canary_gets_its_share_and_a_key_always_the_same_version() {
        let there = versions(&["1.1.0", "1.0.0"]);
        let traffic = Traffic {
            canary: vec![("1.1.0".into(), 10.0)],
            shadow: None,
        };
        let routes = Routes::resolve(&there, 1, &traffic).unwrap();
        let counter = AtomicU64::new(0);
        let canary = (0..10_000)
            .filter(|_| routes.pick(1, None, &counter).0 == 0)
            .count();
        assert!((900..=1100).contains(&canary), "{canary} of 10000");
        // Keys: each always lands on one version, and about a tenth of them on the canary.
        let keyed: Vec<usize> = (0..2_000)
            .map(|i| routes.pick(1, Some(&format!("user-{i}")), &counter).0)
            .collect();
        for (i, version) in keyed.iter().enumerate() {
            let again = routes.pick(1, Some(&format!("user-{i}")), &counter).0;
            assert_eq!(again, *version);
        }
        let on_canary = keyed.iter().filter(|&&v| v == 0).count();
        assert!((140..=260).contains(&on_canary), "{on_canary} of 2000 keys");
    }

    #[test]
    fn a_shadow_samples_requests_and_never_shadows_a_version_to_itself() {
        let there = versions(&["1.1.0", "1.0.0"]);
        let traffic = Traffic {
            canary: vec![("1.1.0".into(), 50.0)],
            shadow: Some(("1.1.0".into(), 20.0)),
        };
        let routes = Routes::resolve(&there, 1, &traffic).unwrap();
        let counter = AtomicU64::new(0);
        let picks: Vec<_> = (0..10_000)
            .map(|_| routes.pick(1, None, &counter))
            .collect();
        assert!(picks.iter().all(|(serve, shadow)| *shadow != Some(*serve)));
        // Of the half served by 1.0.0, a fifth are shadowed to 1.1.0.
        let shadowed = picks.iter().filter(|(_, s)| s.is_some()).count();
        assert!((800..=1200).contains(&shadowed), "{shadowed}");
    }

    #[test]
    fn traffic_that_does_not_fit_the_versions_is_refused() {
        let there = versions(&["1.1.0", "1.0.0"]);
        let refuse = |canary: Vec<(&str, f64)>, shadow: Option<(&str, f64)>| {
            let traffic = Traffic {
                canary: canary
                    .into_iter()
                    .map(|(v, p)| (v.to_string(), p))
                    .collect(),
                shadow: shadow.map(|(v, p)| (v.to_string(), p)),
            };
            Routes::resolve(&there, 1, &traffic).unwrap_err()
        };
        assert!(refuse(vec![("2.0.0", 5.0)], None).contains("2.0.0 is not among"));
        assert!(refuse(vec![("1.0.0", 5.0)], None).contains("is the default"));
        assert!(refuse(vec![("1.1.0", 0.0)], None).contains("percentage"));
        assert!(refuse(vec![("1.1.0", 101.0)], None).contains("percentage"));
        assert!(refuse(vec![("1.1.0", 60.0), ("1", 50.0)], None).contains("more than 100"));
        assert!(refuse(vec![], Some(("3", 10.0))).contains("shadow version 3"));
        assert!(refuse(vec![], Some(("1.1.0", f64::NAN))).contains("percentage"));
    }
}
