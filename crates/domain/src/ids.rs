use std::fmt;

use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered (UUIDv7) id: ids made later sort later.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an id read back from storage or a request.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

typed_id!(
    /// Identifies a user account.
    UserId
);
typed_id!(
    /// Identifies a chat.
    ChatId
);
typed_id!(
    /// Identifies a message.
    MessageId
);
typed_id!(
    /// Identifies a folder of chats.
    FolderId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_generated_later_sort_later() {
        let ids: Vec<MessageId> = (0..1000).map(|_| MessageId::generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
