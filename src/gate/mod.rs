//! Safety gates on candidates and on when updates start (docs/annotations.md#safety-gates). Pure: no I/O.
//!
//! Input: the gate annotations' values, the zone of `TZ`, a container's candidates and the clock's `now`.
//! Output: typed gates and their answers:
//! - [`window`]: `update-window`, "may an update start at t, and when does that change?";
//! - [`pending`]: `pending` and `min-age`, "which candidate is old enough, what waits, and until when?";
//! - [`filter`]: `tag-filter` and `skip`, "is this tag (and digest) a candidate at all?".
//!
//! [`settings`] reads them all into [`Gates`] (`hold` is a plain boolean there). Which gate applies where: `tag-filter`,
//! `skip` and `min-age` change *what* is chosen (in `resolve`); `hold`, `update-window` and rollout slots
//! only decide *when* a chosen update starts (in the controller). None of them ever stops a check.

pub mod filter;
pub mod pending;
pub mod settings;
pub mod window;

pub use filter::{SkipError, SkipList, TagFilter, TagFilterError};
pub use pending::{
    AgeCandidate, AgeSelection, HeldCandidate, PENDING_LIMIT, Pending, PendingEntry, PendingError,
    select,
};
pub use settings::Gates;
pub use window::{MAX_WINDOW_DURATION, UpdateWindow, WindowError};
