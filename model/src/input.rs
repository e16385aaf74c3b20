//! What the model accepts, checked once for every surface: a batch of 1 to `max_batch` images,
//! each 64 pixel values in 0..=16. `/v1/predict` sends rows, the V2 surfaces a flat tensor; both
//! get the same checks and the same wording.

use super::cnn::{INPUT_LEN, PIXEL_MAX};

/// What is wrong with a batch of images, naming the offending image and pixel.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("`inputs` is empty; send at least one image")]
    Empty,
    #[error(
        "`inputs` has {count} images; at most {max_batch} are accepted per request (--max-batch)"
    )]
    TooMany { count: usize, max_batch: usize },
    #[error(
        "inputs[{image}] has {len} values; each input must have exactly {INPUT_LEN} (an 8×8 image, row-major)"
    )]
    WrongLength { image: usize, len: usize },
    #[error(
        "inputs[{image}][{pixel}] = {value} is outside 0..=16 (pixel values count \"on\" bits in a 4×4 block)"
    )]
    OutOfRange {
        image: usize,
        pixel: usize,
        value: f64,
    },
}

/// Check a batch given as one row per image.
pub fn images_from_rows<'a>(
    rows: impl ExactSizeIterator<Item = &'a [f64]>,
    max_batch: usize,
) -> Result<Vec<[f32; INPUT_LEN]>, InputError> {
    batch_size(rows.len(), max_batch)?;
    rows.enumerate().map(|(i, row)| image(i, row)).collect()
}

/// `count` images make an acceptable batch: at least one, at most `max_batch`.
fn batch_size(count: usize, max_batch: usize) -> Result<(), InputError> {
    match count {
        0 => Err(InputError::Empty),
        _ if count > max_batch => Err(InputError::TooMany { count, max_batch }),
        _ => Ok(()),
    }
}

/// Check a batch given as a flat, row-major tensor of images (its length a multiple of 64).
pub fn images_from_flat(
    values: &[f64],
    max_batch: usize,
) -> Result<Vec<[f32; INPUT_LEN]>, InputError> {
    let chunks = values.chunks(INPUT_LEN);
    images_from_rows(chunks, max_batch)
}

/// Check a batch given as raw little-endian values of `N` bytes each, row-major, that `value`
/// turns into `f32` exactly (FP32 and UINT8, the binary protocols' common cases): the same
/// checks and errors as [`images_from_flat`], without widening every value to `f64` first,
/// which took most of a 4096-row request's decoding time (benches/README.md).
pub fn images_from_le<const N: usize>(
    bytes: &[u8],
    max_batch: usize,
    value: impl Fn([u8; N]) -> f32,
) -> Result<Vec<[f32; INPUT_LEN]>, InputError> {
    let row_bytes = INPUT_LEN * N;
    let count = bytes.len().div_ceil(row_bytes);
    batch_size(count, max_batch)?;
    let mut out = Vec::with_capacity(count);
    for (index, raw) in bytes.chunks(row_bytes).enumerate() {
        if raw.len() != row_bytes {
            return Err(InputError::WrongLength {
                image: index,
                len: raw.len() / N,
            });
        }
        // No branch per pixel, so the loop vectorises; only a row that fails is searched for
        // the pixel to name.
        let mut row = [0.0f32; INPUT_LEN];
        for (v, le) in row.iter_mut().zip(raw.chunks_exact(N)) {
            *v = value(le.try_into().unwrap_or([0; N]));
        }
        let in_range = row
            .iter()
            .fold(true, |ok, v| ok & (0.0..=PIXEL_MAX).contains(v));
        if !in_range {
            let widened: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            image(index, &widened)?;
        }
        out.push(row);
    }
    Ok(out)
}

fn image(index: usize, row: &[f64]) -> Result<[f32; INPUT_LEN], InputError> {
    if row.len() != INPUT_LEN {
        return Err(InputError::WrongLength {
            image: index,
            len: row.len(),
        });
    }
    let mut out = [0.0f32; INPUT_LEN];
    for (j, (&v, o)) in row.iter().zip(out.iter_mut()).enumerate() {
        if !v.is_finite() || !(0.0..=PIXEL_MAX as f64).contains(&v) {
            return Err(InputError::OutOfRange {
                image: index,
                pixel: j,
                value: v,
            });
        }
        *o = v as f32;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: f64) -> Vec<f64> {
        vec![v; 64]
    }

    fn check(rows: &[Vec<f64>], max_batch: usize) -> Result<Vec<[f32; 64]>, InputError> {
        images_from_rows(rows.iter().map(Vec::as_slice), max_batch)
    }

    #[test]
    fn errors_name_the_image_and_pixel() {
        let detail = |e: InputError| e.to_string();
        assert!(check(&[row(0.0), row(16.0)], 2).is_ok());
        assert!(detail(check(&[], 2).unwrap_err()).contains("empty"));
        assert!(
            detail(check(&[row(1.0), row(1.0), row(1.0)], 2).unwrap_err()).contains("at most 2")
        );
        assert!(detail(check(&[vec![1.0; 63]], 2).unwrap_err()).contains("inputs[0] has 63"));
        let mut bad = row(1.0);
        bad[5] = 16.5;
        assert!(detail(check(&[row(1.0), bad], 2).unwrap_err()).contains("inputs[1][5] = 16.5"));
        assert!(check(&[row(-0.1)], 2).is_err());
        assert!(check(&[row(f64::NAN)], 2).is_err());
        assert!(check(&[row(f64::INFINITY)], 2).is_err());
    }

    type Images = Result<Vec<[f32; 64]>, InputError>;
    type Decode = fn(&[f64], usize) -> Images;

    fn fp32(values: &[f64], max_batch: usize) -> Images {
        let raw: Vec<u8> = values
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect();
        images_from_le(&raw, max_batch, f32::from_le_bytes)
    }

    fn uint8(values: &[f64], max_batch: usize) -> Images {
        let raw: Vec<u8> = values.iter().map(|&v| v as u8).collect();
        images_from_le(&raw, max_batch, |[b]: [u8; 1]| f32::from(b))
    }

    #[test]
    fn raw_values_are_checked_as_the_flat_tensor_is() {
        let fp32_bad = [
            None,
            Some(-0.5),
            Some(16.25),
            Some(f64::NAN),
            Some(f64::INFINITY),
        ];
        let uint8_bad = [None, Some(17.0), Some(255.0)];
        let decoders: [(Decode, &[Option<f64>]); 2] = [(fp32, &fp32_bad), (uint8, &uint8_bad)];
        for (decode, bad) in decoders {
            for bad in bad {
                let mut values = vec![2.0; 128];
                values[64 + 3] = bad.unwrap_or(16.0);
                for max_batch in [1, 2] {
                    let got = decode(&values, max_batch);
                    let want = images_from_flat(&values, max_batch);
                    match (&got, &want) {
                        // NaN != NaN: compare what the error says.
                        (Err(g), Err(w)) => assert_eq!(g.to_string(), w.to_string()),
                        _ => assert_eq!(got, want),
                    }
                }
            }
        }
        let images = images_from_le(&[0; 512], 2, f32::from_le_bytes).unwrap();
        assert_eq!(images, vec![[0.0; 64]; 2]);
        assert_eq!(
            images_from_le(&[], 4, f32::from_le_bytes),
            Err(InputError::Empty)
        );
        assert_eq!(
            images_from_le(&[0; 300], 4, f32::from_le_bytes),
            Err(InputError::WrongLength { image: 1, len: 11 })
        );
    }

    #[test]
    fn a_flat_tensor_is_checked_image_by_image() {
        let mut flat = vec![2.0; 128];
        let images = images_from_flat(&flat, 2).unwrap();
        assert_eq!(images.len(), 2);
        assert!(images.iter().flatten().all(|&v| v == 2.0));
        flat[64 + 3] = 17.0;
        assert_eq!(
            images_from_flat(&flat, 2),
            Err(InputError::OutOfRange {
                image: 1,
                pixel: 3,
                value: 17.0
            })
        );
        assert_eq!(
            images_from_flat(&flat, 1),
            Err(InputError::TooMany {
                count: 2,
                max_batch: 1
            })
        );
        assert_eq!(images_from_flat(&[], 4), Err(InputError::Empty));
    }
}
