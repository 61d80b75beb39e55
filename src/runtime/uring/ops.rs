//! What a completion is for, packed into its 64-bit user data: the kind of
//! operation, the token of the object it was made for, and the generation of
//! that token's slot then (a completion of a closed connection finds a newer
//! generation and is not delivered to whoever holds the token now).

/// The kind of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The poll of the epoll instance (everything not on the ring).
    Epoll = 1,
    /// A connection's multishot receive.
    Receive = 2,
    /// A connection's send.
    Send = 3,
    /// A listener's multishot accept.
    Accept = 4,
    /// A cancellation (its own completion says nothing of interest).
    Cancel = 5,
}

const GENERATION_BITS: u32 = 28;
pub(super) const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

/// An operation's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Op {
    pub kind: Kind,
    pub token: u32,
    pub generation: u32,
}

impl Op {
    pub fn new(kind: Kind, token: u32, generation: u32) -> Op {
        Op {
            kind,
            token,
            generation: generation & GENERATION_MASK,
        }
    }

    pub fn user_data(self) -> u64 {
        (self.kind as u64) << 60 | (self.generation as u64) << 32 | self.token as u64
    }

    pub fn from_user_data(data: u64) -> Option<Op> {
        let kind = match data >> 60 {
            1 => Kind::Epoll,
            2 => Kind::Receive,
            3 => Kind::Send,
            4 => Kind::Accept,
            5 => Kind::Cancel,
            _ => return None,
        };
        Some(Op {
            kind,
            token: data as u32,
            generation: (data >> 32) as u32 & GENERATION_MASK,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_keeps_kind_token_and_generation() {
        for kind in [Kind::Epoll, Kind::Receive, Kind::Send, Kind::Accept, Kind::Cancel] {
            let op = Op::new(kind, u32::MAX - 1, GENERATION_MASK);
            assert_eq!(Op::from_user_data(op.user_data()), Some(op));
        }
        // The generation wraps within its bits.
        let op = Op::new(Kind::Send, 7, GENERATION_MASK + 2);
        assert_eq!(Op::from_user_data(op.user_data()).unwrap().generation, 1);
        assert_eq!(Op::from_user_data(0), None);
    }
}
