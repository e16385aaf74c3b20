//! The batch sizes forward passes are padded up to.
//!
//! A GPU backend compiles its kernels for each tensor shape it meets (about a second each on an
//! H100), and the dynamic batcher can produce any size from 1 to `--max-batch`: a fresh server
//! would stall again and again. Padding every pass up to one of a few sizes, and running each of
//! them once before readiness, moves every compile to start-up. The CPU backends compile nothing,
//! and padding would only cost them work: there, by default, passes run at the size they are.

/// How `--batch-buckets` was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketSpec {
    /// Powers of two on a GPU, no padding on the CPU backends.
    Auto,
    /// No padding: every pass runs at the size it has.
    Off,
    /// 1, 2, 4, … up to `--max-batch` (which is always a bucket).
    PowersOfTwo,
    /// These sizes, plus `--max-batch` if it is not among them.
    Sizes(Vec<usize>),
}

impl std::str::FromStr for BucketSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "none" | "off" => Ok(Self::Off),
            "pow2" => Ok(Self::PowersOfTwo),
            list => {
                let sizes = list
                    .split(',')
                    .map(|n| match n.trim().parse::<usize>() {
                        Ok(0) | Err(_) => Err(format!(
                            "{n:?} is not a batch size: use auto, none, pow2 or sizes like 1,8,64"
                        )),
                        Ok(n) => Ok(n),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Self::Sizes(sizes))
            }
        }
    }
}

/// Why a bucket list cannot serve `--max-batch`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--batch-buckets: {size} is larger than --max-batch ({max_batch})")]
pub struct BucketError {
    pub(crate) size: usize,
    pub(crate) max_batch: usize,
}

/// The sizes passes are padded to, ascending; empty when passes are not padded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Buckets(Vec<usize>);

impl Buckets {
    /// Resolve `spec` for a queue of `max_batch` inputs per pass on a GPU or a CPU backend.
    pub fn resolve(spec: &BucketSpec, max_batch: usize, gpu: bool) -> Result<Self, BucketError> {
        let max_batch = max_batch.max(1);
        let mut sizes = match spec {
            BucketSpec::Off => return Ok(Self::default()),
            BucketSpec::Auto if !gpu => return Ok(Self::default()),
            BucketSpec::Auto | BucketSpec::PowersOfTwo => {
                std::iter::successors(Some(1), |n| Some(n * 2))
                    .take_while(|&n| n < max_batch)
                    .collect()
            }
            BucketSpec::Sizes(sizes) => {
                if let Some(&size) = sizes.iter().find(|&&n| n > max_batch) {
                    return Err(BucketError { size, max_batch });
                }
                sizes.clone()
            }
        };
        sizes.push(max_batch);
        sizes.sort_unstable();
        sizes.dedup();
        Ok(Self(sizes))
    }

    /// The size a pass of `inputs` runs at: the smallest bucket that holds them, or `inputs`
    /// itself when passes are not padded.
    pub fn padded(&self, inputs: usize) -> usize {
        self.0
            .iter()
            .copied()
            .find(|&size| size >= inputs)
            .unwrap_or(inputs)
    }

    /// The bucket sizes, ascending (empty: no padding).
    pub fn sizes(&self) -> &[usize] {
        &self.0
    }

    /// The sizes a warm-up runs so that no later pass meets a shape for the first time: every
    /// bucket, or a single input when passes are not padded (any size can come; one pass at
    /// least proves the model runs).
    pub(crate) fn warm_up_sizes(&self) -> Vec<usize> {
        match self.sizes() {
            [] => vec![1],
            sizes => sizes.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(spec: &str, max_batch: usize, gpu: bool) -> Vec<usize> {
        Buckets::resolve(&spec.parse().unwrap(), max_batch, gpu)
            .unwrap()
            .sizes()
            .to_vec()
    }

    #[test]
    fn auto_pads_to_powers_of_two_on_a_gpu_only() {
        assert_eq!(resolve("auto", 64, true), [1, 2, 4, 8, 16, 32, 64]);
        assert_eq!(resolve("auto", 100, true), [1, 2, 4, 8, 16, 32, 64, 100]);
        assert_eq!(resolve("auto", 1, true), [1]);
        assert!(resolve("auto", 64, false).is_empty());
        assert_eq!(resolve("pow2", 8, false), [1, 2, 4, 8]);
        assert!(resolve("none", 64, true).is_empty());
    }

    #[test]
    fn listed_sizes_always_include_max_batch_and_never_exceed_it() {
        assert_eq!(resolve("64, 1,8", 256, false), [1, 8, 64, 256]);
        assert_eq!(resolve("8,8,64", 64, true), [8, 64]);
        assert_eq!(
            Buckets::resolve(&"1,512".parse().unwrap(), 256, true),
            Err(BucketError {
                size: 512,
                max_batch: 256
            })
        );
        for bad in ["", "0", "1,x", "-4", "fast"] {
            assert!(bad.parse::<BucketSpec>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_pass_runs_at_the_smallest_bucket_that_holds_it() {
        let buckets = Buckets::resolve(&BucketSpec::Sizes(vec![1, 8, 64]), 64, true).unwrap();
        let padded: Vec<_> = [1, 2, 8, 9, 63, 64].map(|n| buckets.padded(n)).into();
        assert_eq!(padded, [1, 8, 8, 64, 64, 64]);
        let off = Buckets::default();
        assert_eq!([1, 7, 64].map(|n| off.padded(n)), [1, 7, 64]);
        assert_eq!(buckets.warm_up_sizes(), [1, 8, 64]);
        assert_eq!(off.warm_up_sizes(), [1]);
    }
}
