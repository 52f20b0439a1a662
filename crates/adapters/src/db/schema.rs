//! The tables, shared by both backends (the search columns and tables each backend
//! keeps for itself are not here: `db::search` queries them in SQL) (see `sql_types` for the two column types whose
//! storage differs). Kept in step with `migrations/postgres` and `migrations/sqlite`.

diesel::table! {
    use diesel::sql_types::{BigInt, Bool, Nullable, Text};
    use crate::db::sql_types::{UtcTimestamp, Uuid};

    users (id) {
        id -> Uuid,
        email -> Text,
        password_hash -> Text,
        created_at -> UtcTimestamp,
        token_generation -> BigInt,
        /// `user` or `admin`.
        role -> Text,
        disabled -> Bool,
        /// The account's own daily token limit, when an admin set one.
        token_limit -> Nullable<BigInt>,
    }
}

diesel::table! {
    use diesel::sql_types::{Bool, Nullable, Text};
    use crate::db::sql_types::{UtcTimestamp, Uuid};

    chats (id) {
        id -> Uuid,
        user_id -> Uuid,
        title -> Text,
        created_at -> UtcTimestamp,
        active_message_id -> Nullable<Uuid>,
        pinned -> Bool,
        archived -> Bool,
        folder_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    use diesel::sql_types::Text;
    use crate::db::sql_types::{UtcTimestamp, Uuid};

    folders (id) {
        id -> Uuid,
        user_id -> Uuid,
        name -> Text,
        created_at -> UtcTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Bool, Nullable, Text};
    use crate::db::sql_types::{UtcTimestamp, Uuid};

    messages (id) {
        id -> Uuid,
        chat_id -> Uuid,
        user_id -> Uuid,
        role -> Text,
        content -> Text,
        created_at -> UtcTimestamp,
        parent_id -> Nullable<Uuid>,
        status -> Text,
        /// Where each piece of a reply ends in `content`: character offsets, each
        /// followed by a comma.
        piece_ends -> Text,
        /// When the instance generating the reply last said it is alive.
        heartbeat_at -> Nullable<UtcTimestamp>,
        /// Whether someone asked for the generating reply to stop.
        stop_requested -> Bool,
        /// The tokens a reply took (both set, or neither), and whether they are an
        /// estimate.
        prompt_tokens -> Nullable<BigInt>,
        completion_tokens -> Nullable<BigInt>,
        usage_estimated -> Bool,
    }
}

diesel::table! {
    use diesel::sql_types::BigInt;
    use crate::db::sql_types::Uuid;

    /// The ledger: the tokens each user spent each UTC day (days since 1970-01-01).
    /// Deleting messages leaves it as it is.
    token_usage (user_id, day) {
        user_id -> Uuid,
        day -> BigInt,
        tokens -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::{BigInt, Text};

    /// The rate limit's budgets: a client's GCRA theoretical arrival time, in
    /// microseconds since the Unix epoch.
    attempt_budgets (client) {
        client -> Text,
        tat -> BigInt,
    }
}

diesel::joinable!(chats -> users (user_id));
diesel::joinable!(messages -> chats (chat_id));
diesel::joinable!(folders -> users (user_id));
diesel::joinable!(token_usage -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(users, chats, messages, folders, token_usage);
