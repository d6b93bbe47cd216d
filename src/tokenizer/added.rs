//! `add_tokens` and `add_special_tokens`: growing the vocabulary, as transformers does before
//! `model.resize_token_embeddings(len(tokenizer))`.
use std::sync::Arc;

use tokenizers::AddedToken;

use super::{SpecialTokens, Tokenizer, tk_err};
use crate::Result;

impl Tokenizer {
    /// Adds `tokens` to the vocabulary as whole tokens (never split, matched in raw text);
    /// returns how many were new. Follow with `model.resize_token_embeddings(tok.vocab_size())`.
    pub fn add_tokens<S: AsRef<str>>(&mut self, tokens: &[S]) -> Result<usize> {
        let added: Vec<AddedToken> = tokens
            .iter()
            .map(|t| AddedToken::from(t.as_ref().to_string(), false))
            .collect();
        Arc::make_mut(&mut self.inner)
            .add_tokens(added)
            .map_err(tk_err)
    }

    /// Adds the role tokens set in `special` (e.g. `pad_token: Some("[PAD]".into())`) as special
    /// tokens (skipped by `decode` with `DecodeOptions::SKIP_SPECIAL_TOKENS`) and gives them their
    /// roles; returns how many were new to the vocabulary. Roles left `None` keep their current token.
    pub fn add_special_tokens(&mut self, special: &SpecialTokens) -> Result<usize> {
        let tokens = special.all();
        let before = self.vocab_size();
        let added: Vec<AddedToken> = tokens
            .iter()
            .map(|t| AddedToken::from(t.clone(), true))
            .collect();
        Arc::make_mut(&mut self.inner)
            .add_special_tokens(added)
            .map_err(tk_err)?;
        let s = &mut self.special;
        for (new, slot) in [
            (&special.bos_token, &mut s.bos_token),
            (&special.eos_token, &mut s.eos_token),
            (&special.unk_token, &mut s.unk_token),
            (&special.sep_token, &mut s.sep_token),
            (&special.pad_token, &mut s.pad_token),
            (&special.cls_token, &mut s.cls_token),
            (&special.mask_token, &mut s.mask_token),
        ] {
            if new.is_some() {
                slot.clone_from(new);
            }
        }
        Ok(self.vocab_size() - before)
    }
}
