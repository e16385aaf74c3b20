//! The protocol's tensor datatypes: their names on the wire and in Triton's model
//! configuration, their sizes, and how their little-endian bytes decode.

/// The protocol's tensor datatypes that this server reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum Datatype {
    INT8,
    INT16,
    INT32,
    INT64,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    FP32,
    FP64,
    /// Length-prefixed strings (classification results); never accepted as input.
    BYTES,
}

impl Datatype {
    /// Every input datatype accepted: FP32, and those whose pixel values convert to it exactly.
    pub(crate) const INPUTS: [Datatype; 10] = [
        Self::FP32,
        Self::FP64,
        Self::INT8,
        Self::INT16,
        Self::INT32,
        Self::INT64,
        Self::UINT8,
        Self::UINT16,
        Self::UINT32,
        Self::UINT64,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::INT8 => "INT8",
            Self::INT16 => "INT16",
            Self::INT32 => "INT32",
            Self::INT64 => "INT64",
            Self::UINT8 => "UINT8",
            Self::UINT16 => "UINT16",
            Self::UINT32 => "UINT32",
            Self::UINT64 => "UINT64",
            Self::FP32 => "FP32",
            Self::FP64 => "FP64",
            Self::BYTES => "BYTES",
        }
    }

    /// The name Triton's model configuration uses (`TYPE_FP32`, ...).
    pub(crate) fn config_name(self) -> String {
        match self {
            Self::BYTES => "TYPE_STRING".into(),
            other => format!("TYPE_{}", other.as_str()),
        }
    }

    /// An input datatype by its protocol name.
    pub(crate) fn input(name: &str) -> Option<Self> {
        Self::INPUTS.into_iter().find(|d| d.as_str() == name)
    }

    /// Bytes per element (0 for BYTES, whose elements vary).
    pub(crate) fn size(self) -> usize {
        match self {
            Self::INT8 | Self::UINT8 => 1,
            Self::INT16 | Self::UINT16 => 2,
            Self::FP32 | Self::INT32 | Self::UINT32 => 4,
            Self::FP64 | Self::INT64 | Self::UINT64 => 8,
            Self::BYTES => 0,
        }
    }

    pub(crate) fn is_integer(self) -> bool {
        !matches!(self, Self::FP32 | Self::FP64 | Self::BYTES)
    }

    /// Little-endian elements as f64 (exact for every input type within the pixel range; range
    /// and losslessness are checked afterwards).
    pub fn decode(self, bytes: &[u8]) -> Vec<f64> {
        fn le<const N: usize, T>(bytes: &[u8], from: fn([u8; N]) -> T) -> Vec<f64>
        where
            T: Into<f64>,
        {
            bytes
                .chunks_exact(N)
                .map(|c| from(c.try_into().unwrap_or([0; N])).into())
                .collect()
        }
        // 64-bit integers have no lossless `Into<f64>`; values beyond 2^53 are out of range anyway.
        fn le64<T>(bytes: &[u8], from: fn([u8; 8]) -> T, cast: fn(T) -> f64) -> Vec<f64> {
            bytes
                .chunks_exact(8)
                .map(|c| cast(from(c.try_into().unwrap_or([0; 8]))))
                .collect()
        }
        match self {
            Self::INT8 => le(bytes, i8::from_le_bytes),
            Self::UINT8 => le(bytes, u8::from_le_bytes),
            Self::INT16 => le(bytes, i16::from_le_bytes),
            Self::UINT16 => le(bytes, u16::from_le_bytes),
            Self::INT32 => le(bytes, i32::from_le_bytes),
            Self::UINT32 => le(bytes, u32::from_le_bytes),
            Self::FP32 => le(bytes, f32::from_le_bytes),
            Self::FP64 => le(bytes, f64::from_le_bytes),
            Self::INT64 => le64(bytes, i64::from_le_bytes, |v| v as f64),
            Self::UINT64 => le64(bytes, u64::from_le_bytes, |v| v as f64),
            Self::BYTES => Vec::new(),
        }
    }
}

/// The input datatypes as an OpenAPI string enum (BYTES is never an input).
pub(crate) fn input_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(Datatype::INPUTS.map(Datatype::as_str)))
        .description(Some(
            "FP32, or a type whose values convert to FP32 without loss",
        ))
        .build()
}
