//! What may travel as a message, and the type-erased form the executors move around.
//!
//! Messages are typed and bound by serde so that a remote send (cluster) or the deterministic
//! executor's trace hash can encode them with bincode. Local sends never serialize.

use std::any::Any;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Anything an actor can receive: serde-encodable, sendable between threads, owned.
pub trait Message: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Message for T {}

/// The bincode configuration used everywhere a message is encoded.
pub fn codec() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes `msg` with the project's bincode configuration, appending to `out`.
pub fn encode_into<M: Serialize>(msg: &M, out: &mut Vec<u8>) {
    out.extend_from_slice(&encode(msg));
}

/// Decodes a whole message of type `M` from `bytes`; trailing bytes are refused.
pub fn decode<M: DeserializeOwned>(bytes: &[u8]) -> Result<M, String> {
    let (msg, used) = bincode::serde::decode_from_slice::<M, _>(bytes, codec()).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - used));
    }
    Ok(msg)
}

/// Encodes `msg` into a fresh buffer.
pub fn encode<M: Serialize>(msg: &M) -> Vec<u8> {
    // Encoding into a Vec cannot fail for serde types without custom failing impls; a failure
    // would mean a broken Serialize impl, which we surface loudly rather than send garbage.
    bincode::serde::encode_to_vec(msg, codec()).expect("message serializes")
}

/// A message whose type was erased (replies, port events): it can still be encoded for the trace
/// hash or the wire, and downcast back by the receiver that knows its type.
pub trait ErasedMessage: Send {
    fn encode_into(&self, out: &mut Vec<u8>);
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
    fn type_name(&self) -> &'static str;
}

impl<T: Message> ErasedMessage for T {
    fn encode_into(&self, out: &mut Vec<u8>) {
        encode_into(self, out)
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}
