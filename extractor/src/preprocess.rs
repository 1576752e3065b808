//! Preprocessing as the DEiT export expects it: RGB (grey repeated over 3 channels), resized to
//! 224×224 with bilinear filtering, scaled by 1/255, normalised with the ImageNet mean and
//! standard deviation, laid out as CHW float32.
//!
//! The resize reproduces Pillow's `Image.resize((224, 224), Image.BILINEAR)` on 8-bit images bit
//! for bit: a separable triangle filter whose support grows with the downscaling factor, taps at
//! pixel centres, weights normalised per output pixel and rounded to 22-bit fixed point, a
//! horizontal pass then a vertical pass, each rounded and clamped back to 8 bits. Matching it
//! matters because the reference features (`deit_tiny_reference.npz`) were made that way; the
//! test against its `pixel_values` checks it.

/// Side of the square model input.
pub const SIZE: usize = 224;
/// Values per preprocessed image (`3 × 224 × 224`).
pub const PIXELS: usize = 3 * SIZE * SIZE;
/// ImageNet channel means (RGB) after scaling to `[0, 1]`.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Fixed-point precision of Pillow's 8-bit resampling kernels.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// An 8-bit image, row-major, channels interleaved (HWC), 1 (grey) or 3 (RGB) channels.
#[derive(Clone, Copy, Debug)]
pub struct ImageRef<'a> {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: &'a [u8],
}

/// An owned [`ImageRef`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

impl Image {
    /// A view of this image.
    pub fn as_ref(&self) -> ImageRef<'_> {
        ImageRef {
            width: self.width,
            height: self.height,
            channels: self.channels,
            data: &self.data,
        }
    }
}

/// Why an image cannot be preprocessed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreprocessError {
    /// Width or height is zero.
    Empty { width: usize, height: usize },
    /// Neither 1 nor 3 channels.
    Channels { channels: usize },
    /// The buffer length is not `width × height × channels`.
    Length { expected: usize, found: usize },
}

impl std::fmt::Display for PreprocessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty { width, height } => write!(f, "empty image ({width}×{height})"),
            Self::Channels { channels } => write!(
                f,
                "{channels} channels; only grey (1) and RGB (3) are supported"
            ),
            Self::Length { expected, found } => {
                write!(f, "{found} bytes of pixels, expected {expected}")
            }
        }
    }
}

impl std::error::Error for PreprocessError {}

/// Resampling weights for one axis: for each output position the first input index, the tap
/// count, and `ksize` fixed-point weights.
#[derive(Clone, Debug)]
struct Kernel {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

impl Kernel {
    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear filter
    /// (support 1) over the whole input (`box = (0, in_size)`).
    fn new(in_size: usize, out_size: usize) -> Kernel {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut taps = vec![0f64; ksize];
        for (xx, row) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            let inv = 1.0 / filterscale;
            // `as` truncates toward zero and saturates, like Pillow's `(int)` casts here.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).clamp(0, in_size as i64) as usize;
            let n = xmax.saturating_sub(xmin).min(ksize);
            let mut total = 0.0;
            for (x, t) in taps.iter_mut().enumerate().take(n) {
                *t = bilinear(((x + xmin) as f64 - center + 0.5) * inv);
                total += *t;
            }
            for (w, t) in row.iter_mut().zip(&taps).take(n) {
                let k = if total != 0.0 { t / total } else { *t };
                let fixed = k * f64::from(1u32 << PRECISION_BITS);
                *w = if k < 0.0 {
                    (fixed - 0.5) as i32
                } else {
                    (fixed + 0.5) as i32
                };
            }
            bounds.push((xmin, n));
        }
        Kernel {
            ksize,
            bounds,
            weights,
        }
    }
}

fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Rounding offset every accumulator starts from (Pillow's `1 << (PRECISION_BITS - 1)`).
const HALF: i32 = 1 << (PRECISION_BITS - 1);

// Accumulators are i32 like Pillow's: bilinear weights are non-negative and sum to about
// 2^22, so `HALF + Σ 255·w` stays below 255·2^22 + 2^22 < 2^31.

/// Horizontal pass: each of `lines` lines of `in_w` pixels (`ch` interleaved) becomes
/// `kernel.bounds.len()` pixels.
fn resample_horizontal(src: &[u8], out: &mut [u8], in_w: usize, ch: usize, kernel: &Kernel) {
    let out_w = kernel.bounds.len();
    for (line, dst) in src
        .chunks_exact(in_w * ch)
        .zip(out.chunks_exact_mut(out_w * ch))
    {
        for ((&(first, n), w), px) in kernel
            .bounds
            .iter()
            .zip(kernel.weights.chunks_exact(kernel.ksize))
            .zip(dst.chunks_exact_mut(ch))
        {
            let taps = &line[first * ch..(first + n) * ch];
            for (c, d) in px.iter_mut().enumerate() {
                let mut acc = HALF;
                for (&wt, tap) in w.iter().zip(taps.chunks_exact(ch)) {
                    acc += i32::from(tap[c]) * wt;
                }
                *d = clip8(acc);
            }
        }
    }
}

/// Vertical pass: rows of `row_len` bytes; output row `o` mixes input rows `first..first + n`.
fn resample_vertical(src: &[u8], out: &mut [u8], row_len: usize, kernel: &Kernel) {
    let mut acc = vec![HALF; row_len];
    for ((&(first, n), w), dst) in kernel
        .bounds
        .iter()
        .zip(kernel.weights.chunks_exact(kernel.ksize))
        .zip(out.chunks_exact_mut(row_len))
    {
        acc.fill(HALF);
        for (&wt, row) in w
            .iter()
            .zip(src[first * row_len..(first + n) * row_len].chunks_exact(row_len))
        {
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i32::from(p) * wt;
            }
        }
        for (d, &a) in dst.iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
}

/// Resizes an 8-bit image to `out_w × out_h` exactly as Pillow's bilinear `resize` does.
pub fn resize_bilinear(
    img: ImageRef<'_>,
    out_w: usize,
    out_h: usize,
) -> Result<Image, PreprocessError> {
    check(img)?;
    if out_w == 0 || out_h == 0 {
        return Err(PreprocessError::Empty {
            width: out_w,
            height: out_h,
        });
    }
    let ch = img.channels;
    // Horizontal pass first, then vertical, each rounded to 8 bits (Pillow's order).
    let horizontal = if img.width != out_w {
        let k = Kernel::new(img.width, out_w);
        let mut tmp = vec![0u8; img.height * out_w * ch];
        resample_horizontal(img.data, &mut tmp, img.width, ch, &k);
        tmp
    } else {
        img.data.to_vec()
    };
    let data = if img.height != out_h {
        let k = Kernel::new(img.height, out_h);
        let mut tmp = vec![0u8; out_h * out_w * ch];
        resample_vertical(&horizontal, &mut tmp, out_w * ch, &k);
        tmp
    } else {
        horizontal
    };
    Ok(Image {
        width: out_w,
        height: out_h,
        channels: ch,
        data,
    })
}

fn check(img: ImageRef<'_>) -> Result<(), PreprocessError> {
    if img.width == 0 || img.height == 0 {
        return Err(PreprocessError::Empty {
            width: img.width,
            height: img.height,
        });
    }
    if img.channels != 1 && img.channels != 3 {
        return Err(PreprocessError::Channels {
            channels: img.channels,
        });
    }
    let expected = img
        .width
        .saturating_mul(img.height)
        .saturating_mul(img.channels);
    if img.data.len() != expected {
        return Err(PreprocessError::Length {
            expected,
            found: img.data.len(),
        });
    }
    Ok(())
}

/// Preprocesses one image into `out` (`PIXELS` floats, CHW): resize to 224×224, grey repeated
/// over R, G and B, `(x / 255 - mean) / std`.
pub fn preprocess_into(img: ImageRef<'_>, out: &mut [f32]) -> Result<(), PreprocessError> {
    if out.len() != PIXELS {
        return Err(PreprocessError::Length {
            expected: PIXELS,
            found: out.len(),
        });
    }
    let resized = resize_bilinear(img, SIZE, SIZE)?;
    let ch = resized.channels;
    for (c, plane) in out.chunks_exact_mut(SIZE * SIZE).enumerate() {
        // The 256 possible values of this channel, computed as `(x / 255 - mean) / std`.
        let lut: [f32; 256] = std::array::from_fn(|v| (v as f32 / 255.0 - MEAN[c]) / STD[c]);
        let src = if ch == 1 { 0 } else { c };
        for (dst, px) in plane
            .iter_mut()
            .zip(resized.data.iter().skip(src).step_by(ch))
        {
            *dst = lut[usize::from(*px)];
        }
    }
    Ok(())
}

/// [`preprocess_into`] into a new vector.
pub fn preprocess(img: ImageRef<'_>) -> Result<Vec<f32>, PreprocessError> {
    let mut out = vec![0.0; PIXELS];
    preprocess_into(img, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(width: usize, height: usize, channels: usize, f: impl Fn(usize) -> u8) -> Image {
        Image {
            width,
            height,
            channels,
            data: (0..width * height * channels).map(f).collect(),
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        for (w, h) in [(28, 28), (1, 1), (7, 300), (500, 3)] {
            let i = img(w, h, 3, |_| 77);
            let r = resize_bilinear(i.as_ref(), SIZE, SIZE).unwrap();
            assert!(r.data.iter().all(|&v| v == 77), "{w}x{h}");
        }
    }

    #[test]
    fn same_size_is_identity() {
        let i = img(SIZE, SIZE, 1, |k| (k * 31 % 251) as u8);
        assert_eq!(resize_bilinear(i.as_ref(), SIZE, SIZE).unwrap(), i);
    }

    #[test]
    fn upsampling_by_eight_interpolates_between_centres() {
        // Pillow: 2 pixels [0, 255] → 16 pixels; outputs left of the first centre copy it, those
        // between centres interpolate linearly, those right of the last copy it.
        let i = img(2, 1, 1, |k| if k == 0 { 0 } else { 255 });
        let r = resize_bilinear(i.as_ref(), 16, 1).unwrap();
        let expected: Vec<u8> = (0..16)
            .map(|x| {
                let centre = (x as f64 + 0.5) / 8.0 - 0.5;
                (centre.clamp(0.0, 1.0) * 255.0).round() as u8
            })
            .collect();
        assert_eq!(r.data, expected);
    }

    #[test]
    fn kernel_weights_sum_to_one() {
        for (a, b) in [(28, 224), (64, 224), (224, 28), (300, 224), (1, 224)] {
            let k = Kernel::new(a, b);
            for (o, w) in k.weights.chunks_exact(k.ksize).enumerate() {
                let s: i64 = w.iter().map(|&x| i64::from(x)).sum();
                assert!(
                    (s - (1 << PRECISION_BITS)).abs() <= k.ksize as i64,
                    "{a}->{b} at {o}: {s}"
                );
            }
        }
    }

    #[test]
    fn grey_equals_rgb_with_equal_channels() {
        let g = img(28, 28, 1, |k| (k * 7 % 256) as u8);
        let rgb = Image {
            channels: 3,
            data: g.data.iter().flat_map(|&v| [v, v, v]).collect(),
            ..g.clone()
        };
        assert_eq!(
            preprocess(g.as_ref()).unwrap(),
            preprocess(rgb.as_ref()).unwrap()
        );
    }

    #[test]
    fn normalisation() {
        let i = img(3, 5, 3, |k| [0, 255, 128][k % 3]);
        let p = preprocess(i.as_ref()).unwrap();
        let at = |c: usize| p[c * SIZE * SIZE + 1000];
        assert!((at(0) - (0.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((at(1) - (1.0 - 0.456) / 0.224).abs() < 1e-6);
        assert!((at(2) - (128.0 / 255.0 - 0.406) / 0.225).abs() < 1e-6);
    }

    #[test]
    fn bad_images_are_errors() {
        let e = |w, h, c, n| {
            preprocess(ImageRef {
                width: w,
                height: h,
                channels: c,
                data: &vec![0; n],
            })
        };
        assert_eq!(
            e(0, 5, 1, 0),
            Err(PreprocessError::Empty {
                width: 0,
                height: 5
            })
        );
        assert_eq!(
            e(2, 2, 4, 16),
            Err(PreprocessError::Channels { channels: 4 })
        );
        assert_eq!(
            e(2, 2, 3, 11),
            Err(PreprocessError::Length {
                expected: 12,
                found: 11
            })
        );
        let mut short = vec![0.0; 10];
        assert!(preprocess_into(img(2, 2, 1, |_| 0).as_ref(), &mut short).is_err());
    }
}
