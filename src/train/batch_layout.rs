//! How a run's global batch is made (ranks × per-device batch × accumulation), kept in each
//! checkpoint so that a resume with another world size can say what changed: nothing that
//! matters when the global batch is the same (the run continues on the same examples), and a
//! warning naming the old and new batch when it is not (allowed, as the Hugging Face Trainer
//! allows it; the steps from there train other slices of the data than the original run).
use std::fmt;

/// The three factors of a global batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BatchLayout {
    pub world_size: usize,
    pub per_device: usize,
    pub accumulation: usize,
}

impl BatchLayout {
    /// Examples per optimiser step over all ranks.
    pub fn global(self) -> usize {
        self.world_size * self.per_device * self.accumulation
    }
}

impl fmt::Display for BatchLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = if self.world_size == 1 {
            "1 process".to_string()
        } else {
            format!("{} ranks", self.world_size)
        };
        write!(
            f,
            "{who} × batch {} × accumulation {}",
            self.per_device, self.accumulation
        )
    }
}

/// What a resume from `checkpoint` (written with `saved`) on `ours` should tell the user:
/// `None` when the layout is the same; `Some((false, note))` when only the split changed (same
/// global batch); `Some((true, warning))` when the global batch changed.
pub(super) fn resume_note(
    checkpoint: &str,
    step: usize,
    saved: BatchLayout,
    ours: BatchLayout,
) -> Option<(bool, String)> {
    if saved == ours {
        return None;
    }
    if saved.global() == ours.global() {
        return Some((
            false,
            format!(
                "resuming {checkpoint} (written by {saved}) on {ours}: the same global batch of {}, so the run continues on the examples it would have trained (dropout aside: its masks are drawn per rank)",
                ours.global()
            ),
        ));
    }
    Some((
        true,
        format!(
            "resuming {checkpoint} with another global batch: it was written by {saved} = {} examples a step, this run is {ours} = {} a step. The steps after {step} train {} examples each and slice the epochs differently from the run that wrote the checkpoint (an epoch has another number of steps, so the logged epoch jumps); the learning-rate schedule and the optimiser state go on by step unchanged. Keep ranks × per_device_train_batch_size × gradient_accumulation_steps = {} to continue that run exactly.",
            saved.global(),
            ours.global(),
            ours.global(),
            saved.global()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(world_size: usize, per_device: usize, accumulation: usize) -> BatchLayout {
        BatchLayout {
            world_size,
            per_device,
            accumulation,
        }
    }

    #[test]
    fn the_same_layout_says_nothing() {
        assert_eq!(resume_note("checkpoint-3", 3, l(2, 8, 1), l(2, 8, 1)), None);
    }

    #[test]
    fn another_split_of_the_same_global_batch_is_a_note() {
        let (warn, text) = resume_note("checkpoint-3", 3, l(2, 8, 1), l(1, 16, 1)).unwrap();
        assert!(!warn);
        assert!(
            text.contains("2 ranks × batch 8 × accumulation 1"),
            "{text}"
        );
        assert!(
            text.contains("1 process × batch 16 × accumulation 1"),
            "{text}"
        );
        assert!(text.contains("same global batch of 16"), "{text}");
    }

    #[test]
    fn another_global_batch_is_a_warning_naming_both() {
        let (warn, text) = resume_note("checkpoint-3", 3, l(2, 8, 1), l(1, 8, 1)).unwrap();
        assert!(warn);
        assert!(
            text.contains("2 ranks × batch 8 × accumulation 1 = 16 examples a step"),
            "{text}"
        );
        assert!(
            text.contains("1 process × batch 8 × accumulation 1 = 8 a step"),
            "{text}"
        );
        assert!(text.contains("steps after 3"), "{text}");
    }
}
