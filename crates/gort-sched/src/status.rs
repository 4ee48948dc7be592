//! What a goroutine is doing: its [`Status`] (Go's `_Grunnable`,
//! `_Grunning`, ...) and, while it waits, its [`WaitReason`].
//!
//! Both are public: `GRef` users see them in dumps and deadlock reports,
//! and layers above name their waits. The status itself is stored in the
//! G's state word (gstate.rs), where `Status`'s discriminants are the low
//! bits; who may move a G from one status to another is written in g.rs.

use std::fmt;

/// A goroutine's state (Go's `_Grunnable`, `_Grunning`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// On a run queue, or about to be put on one.
    Runnable = 1,
    /// Running on an M.
    Running = 2,
    /// Parked, with a wait reason; someone else will make it runnable.
    Waiting = 3,
    /// Finished; the G is on a free list, to be reused.
    Dead = 4,
    /// In a syscall or C call: its M runs it, without a P.
    Syscall = 5,
}

impl Status {
    pub(crate) fn from_u8(v: u8) -> Status {
        match v & crate::gstate::STATUS_MASK as u8 {
            1 => Status::Runnable,
            2 => Status::Running,
            3 => Status::Waiting,
            5 => Status::Syscall,
            _ => Status::Dead,
        }
    }
}

/// Why a goroutine is parked (Go's `waitReason`), shown in deadlock reports
/// and goroutine dumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// Not waiting.
    None,
    /// In `JoinHandle::join`.
    Join,
    /// Receiving from a channel.
    ChanReceive,
    /// Sending on a channel.
    ChanSend,
    /// In `select!` with no ready arm.
    Select,
    /// Waiting for a `sync::Mutex`.
    Mutex,
    /// In `WaitGroup::wait`.
    WaitGroup,
    /// In `sleep`.
    Sleep,
    /// Parked by a layer above with its own reason.
    Other(&'static str),
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            WaitReason::None => "none",
            WaitReason::Join => "join",
            WaitReason::ChanReceive => "chan receive",
            WaitReason::ChanSend => "chan send",
            WaitReason::Select => "select",
            WaitReason::Mutex => "sync.Mutex.Lock",
            WaitReason::WaitGroup => "sync.WaitGroup.Wait",
            WaitReason::Sleep => "sleep",
            WaitReason::Other(s) => s,
        };
        f.write_str(s)
    }
}
