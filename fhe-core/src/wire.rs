//! The header that every file crossing the wire starts with (DESIGN.md §5).
//!
//! Layout, all integers little-endian, 24 bytes:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `BLTN` |
//! | 4..6 | format version ([`FORMAT_VERSION`]) |
//! | 6..8 | object kind ([`ObjectKind`]) |
//! | 8..16 | parameter fingerprint (0 for objects that carry no CKKS parameters) |
//! | 16..24 | payload length in bytes |
//!
//! The payload (postcard for structured objects) follows and must be exactly that long.

use crate::Error;

/// The four magic bytes at the start of every blindtuner file.
pub const MAGIC: [u8; 4] = *b"BLTN";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the header in bytes.
pub const HEADER_LEN: usize = 24;

/// What a file holds. Codes are part of the format: never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    Params = 1,
    /// Hospital only. No function that writes a cloud-bound file accepts this kind.
    SecretKey = 2,
    PublicKey = 3,
    EvalKeys = 4,
    EncryptedDataset = 5,
    EncryptedModel = 6,
    Model = 7,
    Features = 8,
    Ciphertext = 9,
    RefreshRequest = 10,
    RefreshResponse = 11,
    Checkpoint = 12,
    /// Hospital only: the standardisation statistics and class names kept beside the key.
    Stats = 13,
    /// Encrypted class scores of an encrypted inference run.
    EncryptedScores = 14,
}

impl ObjectKind {
    const ALL: [ObjectKind; 14] = [
        Self::Params,
        Self::SecretKey,
        Self::PublicKey,
        Self::EvalKeys,
        Self::EncryptedDataset,
        Self::EncryptedModel,
        Self::Model,
        Self::Features,
        Self::Ciphertext,
        Self::RefreshRequest,
        Self::RefreshResponse,
        Self::Checkpoint,
        Self::Stats,
        Self::EncryptedScores,
    ];

    /// The kind with this code, or an [`Error::UnknownCode`].
    pub fn from_code(code: u16) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|k| *k as u16 == code)
            .ok_or(Error::UnknownCode {
                what: "object kind",
                code: u64::from(code),
            })
    }

    /// Human-readable name, as used in error messages and `blindtuner inspect`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Params => "Params",
            Self::SecretKey => "SecretKey",
            Self::PublicKey => "PublicKey",
            Self::EvalKeys => "EvalKeys",
            Self::EncryptedDataset => "EncryptedDataset",
            Self::EncryptedModel => "EncryptedModel",
            Self::Model => "Model",
            Self::Features => "Features",
            Self::Ciphertext => "Ciphertext",
            Self::RefreshRequest => "RefreshRequest",
            Self::RefreshResponse => "RefreshResponse",
            Self::Checkpoint => "Checkpoint",
            Self::Stats => "Stats",
            Self::EncryptedScores => "EncryptedScores",
        }
    }

    /// Name for a raw code, `"unknown"` if it is not a kind.
    pub fn name_of(code: u16) -> &'static str {
        Self::from_code(code).map_or("unknown", Self::name)
    }
}

/// A parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub kind: ObjectKind,
    pub fingerprint: u64,
    pub payload_len: u64,
}

impl Header {
    /// The header bytes for a payload of `payload_len` bytes.
    pub fn encode(kind: ObjectKind, fingerprint: u64, payload_len: usize) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let fields = MAGIC
            .into_iter()
            .chain(FORMAT_VERSION.to_le_bytes())
            .chain((kind as u16).to_le_bytes())
            .chain(fingerprint.to_le_bytes())
            .chain((payload_len as u64).to_le_bytes());
        for (dst, src) in out.iter_mut().zip(fields) {
            *dst = src;
        }
        out
    }

    /// Parses and checks the header of `bytes`; returns it with the payload, which must be
    /// exactly `payload_len` long.
    pub fn decode(bytes: &[u8]) -> Result<(Header, &[u8]), Error> {
        let (head, payload) = bytes.split_at_checked(HEADER_LEN).ok_or(Error::Truncated {
            needed: HEADER_LEN,
            available: bytes.len(),
        })?;
        let (magic, rest) = head.split_at(4);
        if magic != MAGIC {
            return Err(Error::BadMagic);
        }
        let (version, rest) = rest.split_at(2);
        let (kind, rest) = rest.split_at(2);
        let (fingerprint, len) = rest.split_at(8);
        let mut v2 = [0u8; 2];
        v2.copy_from_slice(version);
        let version = u16::from_le_bytes(v2);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let mut k2 = [0u8; 2];
        k2.copy_from_slice(kind);
        let kind = ObjectKind::from_code(u16::from_le_bytes(k2))?;
        let mut fp = [0u8; 8];
        fp.copy_from_slice(fingerprint);
        let mut pl = [0u8; 8];
        pl.copy_from_slice(len);
        let payload_len = u64::from_le_bytes(pl);
        if payload.len() as u64 != payload_len {
            return Err(Error::Truncated {
                needed: usize::try_from(payload_len).unwrap_or(usize::MAX),
                available: payload.len(),
            });
        }
        Ok((
            Header {
                version,
                kind,
                fingerprint: u64::from_le_bytes(fp),
                payload_len,
            },
            payload,
        ))
    }

    /// Like [`Header::decode`], and also checks the kind and (unless `expected_fp` is `None`)
    /// the fingerprint.
    pub fn decode_expect(
        bytes: &[u8],
        kind: ObjectKind,
        expected_fp: Option<u64>,
    ) -> Result<(Header, &[u8]), Error> {
        let (h, payload) = Self::decode(bytes)?;
        if h.kind != kind {
            return Err(Error::WrongKind {
                expected: kind as u16,
                found: h.kind as u16,
            });
        }
        if let Some(fp) = expected_fp
            && fp != h.fingerprint
        {
            return Err(Error::FingerprintMismatch {
                expected: fp,
                found: h.fingerprint,
            });
        }
        Ok((h, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn file(kind: ObjectKind, fp: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = Header::encode(kind, fp, payload.len()).to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn round_trip() {
        let f = file(ObjectKind::Features, 0xfeed, b"hello");
        let (h, p) = Header::decode_expect(&f, ObjectKind::Features, Some(0xfeed)).unwrap();
        assert_eq!(h.kind, ObjectKind::Features);
        assert_eq!(p, b"hello");
    }

    #[test]
    fn rejections() {
        let f = file(ObjectKind::SecretKey, 1, b"xy");
        assert_eq!(
            Header::decode_expect(&f, ObjectKind::EvalKeys, None).unwrap_err(),
            Error::WrongKind {
                expected: 4,
                found: 2
            }
        );
        assert_eq!(
            Header::decode_expect(&f, ObjectKind::SecretKey, Some(2)).unwrap_err(),
            Error::FingerprintMismatch {
                expected: 2,
                found: 1
            }
        );
        assert!(matches!(
            Header::decode(&f[..f.len() - 1]),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            Header::decode(&f[..10]),
            Err(Error::Truncated { .. })
        ));
        let mut bad = f.clone();
        bad[0] = b'X';
        assert_eq!(Header::decode(&bad).unwrap_err(), Error::BadMagic);
        let mut bad = f.clone();
        bad[4] = 9;
        assert!(matches!(
            Header::decode(&bad),
            Err(Error::UnsupportedVersion { found: 9, .. })
        ));
        let mut bad = f;
        bad[6] = 200;
        assert!(matches!(
            Header::decode(&bad),
            Err(Error::UnknownCode { .. })
        ));
    }

    #[test]
    fn every_prefix_is_an_error_not_a_panic() {
        let f = file(ObjectKind::Model, 7, &[1, 2, 3, 4, 5]);
        for cut in 0..f.len() {
            assert!(Header::decode(&f[..cut]).is_err());
        }
    }
}
