//! The crate's way to the generic model behind any face (`AutoModelForCausalLM`, ...), for
//! wrappers written once over every face (LoRA's `PeftModel`). The trait lives in a private
//! module: public in name so public generics can carry it as a bound, but no user can name,
//! implement or call it.
use super::model::Model;

/// The generic model of a face (a handle on the same weights), opaque outside the crate.
pub struct ModelHandle(pub(crate) Model);

/// A face over the generic model.
pub trait Face: Sized {
    /// A handle on the face's model (its weights shared).
    fn handle(&self) -> ModelHandle;
    /// The face over `handle`'s model.
    fn from_handle(handle: ModelHandle) -> Self;
}
