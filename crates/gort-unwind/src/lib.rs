//! defer!, recover and panics carried across stack switches and C frames. Filled by the gort-unwind issue.

#![deny(unsafe_op_in_unsafe_fn)]
