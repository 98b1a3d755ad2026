//! The contract's generated types (`healthscore.v1`, `grpc.health.v1`), the descriptor set
//! for reflection, and [`Envelope`], the hand-written form of the two responses that carry a
//! system report so it can be encoded once and shared.

use std::fmt;

use prost::{
    bytes::{Buf, BufMut, Bytes},
    encoding::{self, WireType},
    DecodeError, Message,
};
use serde::Deserialize;

/// `healthscore.v1`, generated from `proto/healthscore/v1/`.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    include!(concat!(env!("OUT_DIR"), "/healthscore.v1.rs"));

    /// `healthscore.v1.GetSystemHealthResponse`: `report = 1`, see [`super::Envelope`].
    pub type GetSystemHealthResponse = super::SystemReportEnvelope;
    /// `healthscore.v1.WatchHealthResponse`: `report = 1`, see [`super::Envelope`].
    pub type WatchHealthResponse = super::SystemReportEnvelope;
}

/// The two responses that carry a system report.
pub type SystemReportEnvelope = Envelope<v1::SystemHealthReport>;

/// A response whose only field is `report = 1`: either already encoded as the gRPC message the
/// server sends (shared by every reader of one published state, so a large report is not
/// rebuilt, copied or framed per call or per stream), or a message built or decoded the usual
/// way. Its wire format is that of the proto message; clients read it with [`Envelope::report`].
#[derive(Clone, PartialEq)]
pub enum Envelope<M> {
    /// The length-prefixed gRPC message ([`framed`]): 5 bytes of prefix, then this message's
    /// encoding.
    Framed(Bytes),
    Built(Option<M>),
}

/// The length of a gRPC message's prefix: the compression flag and the length.
pub const GRPC_PREFIX: usize = 5;

/// `message` as a gRPC message: uncompressed, its length, its encoding, in one buffer.
pub fn framed(message: &impl Message) -> Bytes {
    let len = message.encoded_len();
    let mut frame = Vec::with_capacity(GRPC_PREFIX + len);
    frame.push(0);
    let len = u32::try_from(len).expect("a report is far below 4 GiB");
    frame.extend_from_slice(&len.to_be_bytes());
    message.encode_raw(&mut frame);
    frame.into()
}

impl<M> Default for Envelope<M> {
    fn default() -> Self {
        Self::Built(None)
    }
}

impl<M: Message + Default> Envelope<M> {
    pub fn built(report: M) -> Self {
        Self::Built(Some(report))
    }

    /// The report, decoding it if it was received or kept encoded.
    pub fn report(self) -> Option<M> {
        match self {
            Self::Built(report) => report,
            Self::Framed(frame) => Self::decode(frame.slice(GRPC_PREFIX..))
                .expect("an Envelope only holds a valid encoding")
                .report(),
        }
    }
}

impl<M: fmt::Debug> fmt::Debug for Envelope<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Framed(frame) => write!(f, "Envelope::Framed({} bytes)", frame.len()),
            Self::Built(report) => f.debug_tuple("Envelope::Built").field(report).finish(),
        }
    }
}

impl<M: Message + Default> Message for Envelope<M> {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match self {
            Self::Framed(frame) => buf.put_slice(&frame[GRPC_PREFIX..]),
            Self::Built(Some(report)) => encoding::message::encode(1, report, buf),
            Self::Built(None) => {}
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: encoding::DecodeContext,
    ) -> Result<(), DecodeError> {
        if tag != 1 {
            return encoding::skip_field(wire_type, tag, buf, ctx);
        }
        let mut report = match std::mem::take(self) {
            Self::Built(report) => report.unwrap_or_default(),
            framed @ Self::Framed(_) => framed.report().unwrap_or_default(),
        };
        encoding::message::merge(wire_type, &mut report, buf, ctx)?;
        *self = Self::Built(Some(report));
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        match self {
            Self::Framed(frame) => frame.len() - GRPC_PREFIX,
            Self::Built(Some(report)) => encoding::message::encoded_len(1, report),
            Self::Built(None) => 0,
        }
    }

    fn clear(&mut self) {
        *self = Self::Built(None);
    }
}

/// The standard `grpc.health.v1` protocol, including `List`.
pub mod health {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    include!(concat!(env!("OUT_DIR"), "/grpc.health.v1.rs"));
}

/// Encoded `FileDescriptorSet` of every proto above, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// Reads an `ExecutorState` from JSON the way the proto JSON mapping writes it: its name
/// (`"EXECUTOR_STATE_DEGRADED"`, or the short `"DEGRADED"`/`"degraded"`) or its number.
pub fn executor_state_json<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<i32, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i32),
        Name(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Number(n) => Ok(n),
        Raw::Name(name) => {
            let upper = name.to_ascii_uppercase();
            let full = if upper.starts_with("EXECUTOR_STATE_") {
                upper
            } else {
                format!("EXECUTOR_STATE_{upper}")
            };
            v1::ExecutorState::from_str_name(&full)
                .map(|state| state as i32)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown executor state {name:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_forms_are_the_same_bytes_on_the_wire() {
        let report = v1::SystemHealthReport {
            status: v1::Status::Critical.into(),
            score: 50,
            revision: 7,
            ..Default::default()
        };
        let built = Envelope::built(report.clone()).encode_to_vec();
        let frame = framed(&Envelope::built(report.clone()));
        assert_eq!(frame[0], 0, "uncompressed");
        assert_eq!(frame[1..GRPC_PREFIX], (built.len() as u32).to_be_bytes());
        let shared = SystemReportEnvelope::Framed(frame);
        assert_eq!(shared.encode_to_vec(), built);
        assert_eq!(shared.encoded_len(), built.len());
        assert_eq!(shared.report(), Some(report.clone()));
        let decoded = SystemReportEnvelope::decode(built.as_slice()).expect("decodes");
        assert_eq!(decoded.report(), Some(report));
        assert_eq!(
            SystemReportEnvelope::default().encode_to_vec(),
            Vec::<u8>::new()
        );
    }
}
