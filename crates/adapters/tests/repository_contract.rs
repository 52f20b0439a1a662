//! The repository contract: every test runs against PostgreSQL and SQLite alike.
#![expect(
    clippy::unwrap_used,
    reason = "tests: a failed unwrap is a failed test"
)]

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use memlayer_adapters::{Database, PoolOptions};
use memlayer_domain::{
    Allowance, Chat, ChatId, ChatTitle, Email, Message, MessageContent, MessageId, MessageStatus,
    Organisation, PasswordHash, PathEnd, Role, Session, TokenUsage, UsageDay, User, UserId,
};
use memlayer_ports::{
    AttemptBudget, AttemptRate, ChatRepository, CreateUserError, HealthCheck, MessageRepository,
    Spent, UserRepository,
};
use memlayer_testkit::TestDatabase;

/// A migrated database of one backend, and the test database under it for raw SQL.
struct Store {
    db: Database,
    raw: TestDatabase,
}

impl Store {
    fn new(raw: TestDatabase) -> Self {
        let options = PoolOptions {
            max_size: 4,
            checkout_timeout: Duration::from_secs(5),
        };
        let db = Database::open(raw.url(), &options).unwrap();
        db.migrate().unwrap();
        Self { db, raw }
    }
}

impl Store {
    /// The rows of `table` that belong to `chat`, counted behind the repository's back.
    fn raw_count(&self, table: &str, chat: &Chat) -> i64 {
        self.raw.count(&format!(
            "SELECT COUNT(*) FROM {table} WHERE chat_id = '{}'",
            chat.id
        ))
    }
}

impl std::ops::Deref for Store {
    type Target = Database;

    fn deref(&self) -> &Database {
        &self.db
    }
}

memlayer_testkit::on_both_backends!(
    crate::Store::new;
    a_user_reads_back_as_stored,
    a_second_account_with_the_same_email_is_refused,
    an_unknown_user_is_absent,
    a_chat_reads_back_as_stored,
    chats_are_listed_newest_first_and_only_the_owners,
    chats_created_in_the_same_microsecond_list_in_a_stable_order,
    deleting_a_missing_chat_reports_it,
    deleting_a_chat_deletes_its_messages,
    deleting_a_user_deletes_their_chats_and_messages,
    messages_are_listed_newest_first_with_ties_broken_by_id,
    the_context_of_a_chat_is_its_latest_messages_each_cut_by_the_database,
    chats_are_paged_after_a_cursor_through_ties,
    messages_are_paged_after_a_cursor_through_ties,
    appending_to_a_missing_chat_stores_nothing,
    any_unicode_text_round_trips,
    migrating_again_changes_nothing,
    the_health_check_passes,
    revoking_tokens_moves_the_generation_on_once_and_can_set_a_new_password,
    a_revoked_session_lists_no_chats_and_its_chats_show_the_new_generation,
    deleting_an_account_takes_its_chats_and_messages_and_frees_the_email,
    a_stale_session_cannot_delete_the_account,
    messages_are_read_oldest_first_page_by_page_through_ties,
    an_attempt_budget_admits_its_burst_then_refuses_until_it_refills,
    each_client_has_its_own_attempt_budget,
    a_refunded_attempt_can_be_spent_again,
    only_refilled_attempt_budgets_are_forgotten,
    attempts_spent_at_once_never_overspend_a_budget,
    a_chat_is_created_only_for_a_current_session_of_an_existing_account,
    an_exchange_is_stored_whole_and_only_in_a_current_sessions_own_chat,
    a_sessions_own_messages_are_listed_and_no_one_elses,
    many_writers_at_once_are_all_kept_and_a_refused_one_spoils_none,
    a_path_is_the_ancestors_of_its_end_with_every_siblings_ids,
    an_exchange_follows_the_chats_active_leaf,
    switching_to_a_message_activates_the_newest_leaf_below_it,
    deleting_a_message_takes_its_subtree_and_moves_the_active_leaf_off_it,
    a_message_is_found_only_in_its_own_chat,
    a_chat_with_messages_but_no_active_leaf_shows_the_path_of_its_newest,
);

/// A database of the previous release, filled, then migrated.
mod previous_release {
    memlayer_testkit::on_both_backends!(
        crate::seeded_at_the_previous_release;
        chats_and_messages_of_the_previous_release_become_one_path_each,
    );

    use super::chats_and_messages_of_the_previous_release_become_one_path_each;
}

fn at(micros: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap() + TimeDelta::microseconds(micros)
}

/// The day the contract's replies end on.
const DAY: UsageDay = UsageDay(20_000);

/// What each reply of the contract's took, unless a test says otherwise.
const USAGE: TokenUsage = TokenUsage {
    prompt_tokens: 7,
    completion_tokens: 3,
    estimated: false,
};

/// At most `generations` replies at once, no daily limit.
fn allow(generations: usize) -> Allowance {
    Allowance {
        tokens_per_day: None,
        generations,
    }
}

/// What `user` spends, with `chat` asked about.
fn spending(db: &Database, chat: ChatId, user: UserId) -> memlayer_ports::Generating {
    memlayer_ports::ReplyRepository::generating(db, Some(chat), user, DAY)
        .unwrap()
        .unwrap()
}

fn new_user(db: &Database, email: &str) -> User {
    let user = User {
        id: UserId::generate(),
        ..User::new(
            Email::parse(email).unwrap(),
            PasswordHash::new(
                "$2b$04$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0".into(),
            ),
            at(123_456),
        )
    };
    UserRepository::create(db, &user).unwrap();
    user
}

fn new_chat(db: &Database, owner: UserId, title: &str, created_at: DateTime<Utc>) -> Chat {
    let chat = Chat {
        id: ChatId::generate(),
        owner,
        title: ChatTitle::parse(title).unwrap(),
        created_at,
        active_message_id: None,
        organisation: Organisation::default(),
    };
    assert!(ChatRepository::create(db, &chat, 0).unwrap());
    chat
}

fn message(chat: &Chat, role: Role, content: &str, created_at: DateTime<Utc>) -> Message {
    let id = MessageId::generate();
    Message {
        id,
        chat_id: chat.id,
        user_id: chat.owner,
        role,
        content: MessageContent::parse(content.into()).unwrap(),
        created_at,
        parent_id: None,
        status: MessageStatus::Complete,
        sibling_ids: vec![id],
        usage: None,
    }
}

/// `message`, following `parent`.
fn reply_to(parent: &Message, role: Role, content: &str, created_at: DateTime<Utc>) -> Message {
    let chat = Chat {
        id: parent.chat_id,
        owner: parent.user_id,
        title: ChatTitle::parse("unused").unwrap(),
        created_at,
        active_message_id: None,
        organisation: Organisation::default(),
    };
    Message {
        parent_id: Some(parent.id),
        ..message(&chat, role, content, created_at)
    }
}

/// Appends `message`, making it its chat's active leaf; whether it was stored.
fn append(db: &Database, message: &Message) -> bool {
    MessageRepository::append(db, message).unwrap().is_some()
}

/// Every message of `chat`, newest first, each as if it had no siblings: what the
/// tests of a chat's messages as one list compare.
fn flat(db: &Database, chat: ChatId) -> Vec<Message> {
    normalized(db.list_oldest_first(None, chat, None, 1_000).unwrap())
        .into_iter()
        .rev()
        .collect()
}

/// `messages`, each as if it had no siblings.
fn normalized(messages: Vec<Message>) -> Vec<Message> {
    messages
        .into_iter()
        .map(|m| Message {
            sibling_ids: vec![m.id],
            usage: None,
            ..m
        })
        .collect()
}

fn a_user_reads_back_as_stored(db: &Store) {
    let user = new_user(db, "ada@example.com");

    assert_eq!(db.find_by_id(user.id).unwrap(), Some(user.clone()));
    assert_eq!(db.find_by_email(&user.email).unwrap(), Some(user.clone()));
    assert!(db.is_current(Session::new(user.id, 0)).unwrap());
}

fn a_second_account_with_the_same_email_is_refused(db: &Store) {
    new_user(db, "ada@example.com");
    let twin = User::new(
        Email::parse("ADA@example.com").unwrap(),
        PasswordHash::new("x".into()),
        at(0),
    );

    let result = UserRepository::create(&**db, &twin);

    assert!(
        matches!(result, Err(CreateUserError::EmailTaken)),
        "{result:?}"
    );
    assert_eq!(db.find_by_id(twin.id).unwrap(), None);
}

fn an_unknown_user_is_absent(db: &Store) {
    assert_eq!(db.find_by_id(UserId::generate()).unwrap(), None);
    assert_eq!(
        db.find_by_email(&Email::parse("nobody@example.com").unwrap())
            .unwrap(),
        None
    );
    assert!(!db.is_current(Session::new(UserId::generate(), 0)).unwrap());
}

fn a_chat_reads_back_as_stored(db: &Store) {
    let user = new_user(db, "ada@example.com");
    let chat = new_chat(db, user.id, "Plans", at(1));

    assert_eq!(db.find(chat.id).unwrap(), Some((chat, 0)));
    assert_eq!(db.find(ChatId::generate()).unwrap(), None);
}

fn chats_are_listed_newest_first_and_only_the_owners(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let bob = new_user(db, "bob@example.com");
    let old = new_chat(db, ada.id, "old", at(1));
    let new = new_chat(db, ada.id, "new", at(3));
    let middle = new_chat(db, ada.id, "middle", at(2));
    new_chat(db, bob.id, "bob's", at(4));

    assert_eq!(
        db.list_for_owner(Session::new(ada.id, 0), None, 100)
            .unwrap(),
        vec![new, middle, old]
    );
}

fn chats_created_in_the_same_microsecond_list_in_a_stable_order(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let mut chats: Vec<Chat> = (0..5)
        .map(|i| new_chat(db, ada.id, &format!("c{i}"), at(7)))
        .collect();
    chats.sort_by_key(|chat| std::cmp::Reverse(chat.id));

    assert_eq!(
        db.list_for_owner(Session::new(ada.id, 0), None, 100)
            .unwrap(),
        chats
    );
    assert_eq!(
        db.list_for_owner(Session::new(ada.id, 0), None, 100)
            .unwrap(),
        chats
    );
}

fn deleting_a_missing_chat_reports_it(db: &Store) {
    assert!(!ChatRepository::delete(&**db, ChatId::generate()).unwrap());
}

fn deleting_a_chat_deletes_its_messages(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let chat = new_chat(db, ada.id, "doomed", at(1));
    let kept = new_chat(db, ada.id, "kept", at(2));
    assert!(append(db, &message(&chat, Role::User, "bye", at(3))));
    let survivor = message(&kept, Role::User, "still here", at(4));
    assert!(append(db, &survivor));

    assert!(ChatRepository::delete(&**db, chat.id).unwrap());

    assert_eq!(db.find(chat.id).unwrap(), None);
    assert!(flat(db, chat.id).is_empty());
    assert_eq!(flat(db, kept.id), vec![survivor]);
}

fn deleting_a_user_deletes_their_chats_and_messages(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let chat = new_chat(db, ada.id, "mine", at(1));
    assert!(append(db, &message(&chat, Role::User, "hello", at(2))));

    db.raw
        .execute(&format!("DELETE FROM users WHERE id = '{}'", ada.id));

    assert!(!db.is_current(Session::new(ada.id, 0)).unwrap());
    assert_eq!(db.find(chat.id).unwrap(), None);
    assert!(flat(db, chat.id).is_empty());
}

fn messages_are_listed_newest_first_with_ties_broken_by_id(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let chat = new_chat(db, ada.id, "talk", at(1));
    let later = message(&chat, Role::Assistant, "later", at(20));
    let tie_a = message(&chat, Role::User, "tie a", at(10));
    let tie_b = message(&chat, Role::User, "tie b", at(10));
    let first = message(&chat, Role::User, "first", at(5));
    for m in [&later, &tie_b, &first, &tie_a] {
        assert!(append(db, m));
    }
    let mut ties = [tie_a, tie_b];
    ties.sort_by_key(|m| std::cmp::Reverse(m.id));

    let listed = flat(db, chat.id);

    let [t1, t2] = ties;
    assert_eq!(listed, vec![later, t1, t2, first]);
}

fn the_context_of_a_chat_is_its_latest_messages_each_cut_by_the_database(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let chat = new_chat(db, ada.id, "talk", at(1));
    let oldest = message(&chat, Role::User, "left out", at(2));
    let long = reply_to(&oldest, Role::Assistant, &"é🙂x".repeat(10_000), at(3));
    let short = reply_to(&long, Role::User, "short", at(4));
    for m in [&oldest, &long, &short] {
        assert!(append(db, m));
    }

    let context = db.path(None, chat.id, None, 2, 7).unwrap();

    let contents: Vec<&str> = context.iter().map(|m| m.content.as_str()).collect();
    // Cut in characters, never inside one.
    assert_eq!(contents, ["short", "é🙂xé🙂xé"]);
    assert_eq!(context[1].id, long.id);
}

fn revoking_tokens_moves_the_generation_on_once_and_can_set_a_new_password(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let first = Session::new(ada.id, 0);
    let new_hash = PasswordHash::new("$2b$04$new".into());

    assert_eq!(db.revoke_tokens(first, None).unwrap(), Some(1));
    // The old session can no longer revoke, nor change the password.
    assert_eq!(db.revoke_tokens(first, Some(&new_hash)).unwrap(), None);
    let second = Session::new(ada.id, 1);
    assert_eq!(db.revoke_tokens(second, Some(&new_hash)).unwrap(), Some(2));

    let stored = db.find_by_id(ada.id).unwrap().unwrap();
    assert_eq!(
        (stored.token_generation, stored.password_hash),
        (2, new_hash)
    );
    assert!(!db.is_current(second).unwrap());
    assert!(db.is_current(Session::new(ada.id, 2)).unwrap());
    assert_eq!(
        db.revoke_tokens(Session::new(UserId::generate(), 0), None)
            .unwrap(),
        None
    );
}

fn a_revoked_session_lists_no_chats_and_its_chats_show_the_new_generation(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let chat = new_chat(db, ada.id, "mine", at(1));
    let old = Session::new(ada.id, 0);
    db.revoke_tokens(old, None).unwrap();

    assert!(db.list_for_owner(old, None, 100).unwrap().is_empty());
    assert_eq!(
        db.list_for_owner(Session::new(ada.id, 1), None, 100)
            .unwrap(),
        vec![chat.clone()]
    );
    assert_eq!(db.find(chat.id).unwrap(), Some((chat, 1)));
}

fn deleting_an_account_takes_its_chats_and_messages_and_frees_the_email(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let bob = new_user(db, "bob@example.com");
    let chat = new_chat(db, ada.id, "mine", at(1));
    let bobs = new_chat(db, bob.id, "bob's", at(1));
    assert!(append(db, &message(&chat, Role::User, "hello", at(2))));
    let kept = message(&bobs, Role::User, "still here", at(2));
    assert!(append(db, &kept));

    assert!(UserRepository::delete(&**db, Session::new(ada.id, 0)).unwrap());

    assert_eq!(db.find_by_id(ada.id).unwrap(), None);
    assert_eq!(db.find(chat.id).unwrap(), None);
    assert_eq!(db.raw_count("messages", &chat), 0);
    assert_eq!(flat(db, bobs.id), vec![kept]);
    new_user(db, "ada@example.com");
}

fn a_stale_session_cannot_delete_the_account(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    db.revoke_tokens(Session::new(ada.id, 0), None).unwrap();

    assert!(!UserRepository::delete(&**db, Session::new(ada.id, 0)).unwrap());
    assert!(db.find_by_id(ada.id).unwrap().is_some());
}

fn messages_are_read_oldest_first_page_by_page_through_ties(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let chat = new_chat(db, ada.id, "talk", at(1));
    for t in [at(7), at(5), at(5), at(5), at(6)] {
        assert!(append(db, &message(&chat, Role::User, "m", t)));
    }
    let mut oldest_first = flat(db, chat.id);
    oldest_first.reverse();

    let mut pages = vec![];
    let mut after = None;
    loop {
        let page = normalized(db.list_oldest_first(None, chat.id, after, 2).unwrap());
        if page.is_empty() {
            break;
        }
        after = page.last().map(Message::cursor);
        pages.push(page);
    }

    assert_eq!(pages.len(), 3);
    assert_eq!(pages.concat(), oldest_first);
}

fn chats_are_paged_after_a_cursor_through_ties(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    // Two share a timestamp, so the cursor must break the tie by id.
    let times = [at(1), at(2), at(2), at(3), at(4)];
    let chats: Vec<Chat> = times
        .iter()
        .map(|t| new_chat(db, ada.id, "c", *t))
        .collect();
    let all = db
        .list_for_owner(Session::new(ada.id, 0), None, 100)
        .unwrap();

    let first = db.list_for_owner(Session::new(ada.id, 0), None, 2).unwrap();
    let second = db
        .list_for_owner(Session::new(ada.id, 0), first.last().map(Chat::cursor), 2)
        .unwrap();
    let third = db
        .list_for_owner(Session::new(ada.id, 0), second.last().map(Chat::cursor), 2)
        .unwrap();

    assert_eq!(all.len(), chats.len());
    assert_eq!([first, second, third].concat(), all);
}

fn messages_are_paged_after_a_cursor_through_ties(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let chat = new_chat(db, ada.id, "talk", at(1));
    for t in [at(5), at(5), at(5), at(6), at(7)] {
        assert!(append(db, &message(&chat, Role::User, "m", t)));
    }
    let mut all = flat(db, chat.id);
    all.reverse();

    let mut pages = vec![];
    let mut after = None;
    loop {
        let page = normalized(
            db.list_oldest_first(Some(Session::new(ada.id, 0)), chat.id, after, 2)
                .unwrap(),
        );
        if page.is_empty() {
            break;
        }
        after = page.last().map(Message::cursor);
        pages.push(page);
    }

    assert_eq!(pages.len(), 3);
    assert_eq!(pages.concat(), all);
}

fn appending_to_a_missing_chat_stores_nothing(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let ghost = Chat {
        organisation: Organisation::default(),
        id: ChatId::generate(),
        owner: ada.id,
        title: ChatTitle::parse("never stored").unwrap(),
        created_at: at(1),
        active_message_id: None,
    };

    assert!(!append(db, &message(&ghost, Role::User, "hello?", at(2))));
    assert!(flat(db, ghost.id).is_empty());
}

fn a_chat_is_created_only_for_a_current_session_of_an_existing_account(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let chat = |owner| Chat {
        organisation: Organisation::default(),
        id: ChatId::generate(),
        owner,
        title: ChatTitle::parse("Plans").unwrap(),
        created_at: at(1),
        active_message_id: None,
    };
    let stale = chat(ada.id);
    let nobodys = chat(UserId::generate());
    let current = chat(ada.id);

    assert!(!ChatRepository::create(&**db, &stale, 1).unwrap());
    assert!(!ChatRepository::create(&**db, &nobodys, 0).unwrap());
    assert!(ChatRepository::create(&**db, &current, 0).unwrap());

    assert_eq!(db.find(stale.id).unwrap(), None);
    assert_eq!(db.find(nobodys.id).unwrap(), None);
    assert_eq!(db.find(current.id).unwrap(), Some((current, 0)));
}

fn an_exchange_is_stored_whole_and_only_in_a_current_sessions_own_chat(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let bob = new_user(db, "bob@example.com");
    let chat = new_chat(db, ada.id, "mine", at(1));
    let ghost = Chat {
        organisation: Organisation::default(),
        id: ChatId::generate(),
        ..chat.clone()
    };
    let pair = |chat: &Chat| {
        let question = message(chat, Role::User, "hello", at(2));
        let reply = reply_to(&question, Role::Assistant, "Message received", at(3));
        (question, reply)
    };
    let refused = [
        (Session::new(bob.id, 0), &chat),  // another user's chat
        (Session::new(ada.id, 1), &chat),  // a session from another generation
        (Session::new(ada.id, 0), &ghost), // no such chat
    ];
    for (session, chat) in refused {
        let (question, reply) = pair(chat);
        assert!(!db.append_exchange(session, &question, &reply).unwrap());
    }
    assert_eq!(db.raw_count("messages", &chat), 0);
    assert_eq!(db.raw_count("messages", &ghost), 0);

    let (question, reply) = pair(&chat);
    assert!(
        db.append_exchange(Session::new(ada.id, 0), &question, &reply)
            .unwrap()
    );

    assert_eq!(flat(db, chat.id), vec![reply, question]);
}

fn a_sessions_own_messages_are_listed_and_no_one_elses(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let bob = new_user(db, "bob@example.com");
    let chat = new_chat(db, ada.id, "mine", at(1));
    let first = message(&chat, Role::User, "first", at(2));
    let second = reply_to(&first, Role::Assistant, "second", at(3));
    assert!(append(db, &first));
    assert!(append(db, &second));
    let ada_now = Session::new(ada.id, 0);
    let path = |session, end| {
        db.path(Some(session), chat.id, end, 10, usize::MAX)
            .unwrap()
    };

    assert_eq!(path(ada_now, None), vec![second.clone(), first.clone()]);
    assert_eq!(path(ada_now, Some(PathEnd::Above(second.id))), vec![first]);
    assert!(path(Session::new(bob.id, 0), None).is_empty());
    db.revoke_tokens(ada_now, None).unwrap();
    assert!(path(ada_now, None).is_empty());
}

fn any_unicode_text_round_trips(db: &Store) {
    let ada = new_user(db, "ünïcødé+tag@exämple.org");
    let chat = new_chat(db, ada.id, "Çà et là — 日本語 🚀", at(1));
    let text = "emoji 👩‍👩‍👧, RTL שלום, combining e\u{301}, tab\t, newline\n, quote \" and \\ backslash, \u{7f}";
    let stored = message(&chat, Role::User, text, at(2));
    assert!(append(db, &stored));

    assert_eq!(db.find_by_email(&ada.email).unwrap().unwrap().id, ada.id);
    assert_eq!(db.find(chat.id).unwrap().unwrap().0.title, chat.title);
    assert_eq!(flat(db, chat.id), vec![stored]);
}

fn migrating_again_changes_nothing(db: &Store) {
    let ada = new_user(db, "ada@example.com");

    assert!(db.migrate().unwrap().is_empty());

    assert!(db.is_current(Session::new(ada.id, 0)).unwrap());
}

/// Writers on many threads at once (SQLite takes them in turn on its one writer and
/// commits them in groups): none fails, each is readable once it returns, and a write
/// the database refuses (a taken email, a missing chat) fails alone, leaving the others
/// of its group stored.
fn many_writers_at_once_are_all_kept_and_a_refused_one_spoils_none(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let chat = new_chat(db, ada.id, "Busy", at(1));
    let ghost = Chat {
        organisation: Organisation::default(),
        id: ChatId::generate(),
        ..chat.clone()
    };
    std::thread::scope(|scope| {
        for thread in 0..16_i64 {
            let (db, chat, ghost, ada) = (&db, &chat, &ghost, &ada);
            scope.spawn(move || {
                for i in 0..20 {
                    let stored = message(chat, Role::User, "kept", at(thread * 100 + i + 2));
                    assert!(append(db, &stored));
                    assert!(
                        flat(db, chat.id).contains(&stored),
                        "a write that returned is readable"
                    );
                    if i % 5 == 0 {
                        let lost = message(ghost, Role::User, "no chat", at(2));
                        assert!(!append(db, &lost));
                        let twin = User {
                            id: UserId::generate(),
                            ..ada.clone()
                        };
                        assert!(matches!(
                            UserRepository::create(&***db, &twin),
                            Err(CreateUserError::EmailTaken)
                        ));
                    }
                }
            });
        }
    });

    assert_eq!(db.raw_count("messages", &chat), 16 * 20);
    assert!(flat(db, ghost.id).is_empty());
}

fn the_health_check_passes(db: &Store) {
    assert!(db.check().is_ok());
}

/// Start-up: migrations under contention, and a database that never answers.
mod startup {
    use std::time::Duration;

    use memlayer_adapters::{Database, DatabaseError, PoolOptions};
    use memlayer_testkit::TestDatabase;

    use super::new_user;

    fn options() -> PoolOptions {
        PoolOptions {
            max_size: 2,
            checkout_timeout: Duration::from_secs(10),
        }
    }

    /// Four instances start at once on an empty database: one migrates, the others wait
    /// and find nothing left to do.
    fn instances_migrating_at_once_take_turns(raw: &TestDatabase) {
        let instances: Vec<Database> = (0..4)
            .map(|_| Database::open(raw.url(), &options()).unwrap())
            .collect();

        let applied: Vec<Vec<String>> = std::thread::scope(|scope| {
            let running: Vec<_> = instances
                .iter()
                .map(|db| scope.spawn(|| db.migrate()))
                .collect();
            running
                .into_iter()
                .map(|handle| handle.join().unwrap().unwrap())
                .collect()
        });

        let mut counts: Vec<usize> = applied.iter().map(Vec::len).collect();
        counts.sort_unstable();
        // One instance applied every migration; the others found nothing left to do.
        assert_eq!(counts[..3], [0, 0, 0], "{applied:?}");
        assert!(counts[3] >= 2, "{applied:?}");
    }

    #[test]
    fn postgres_instances_migrating_at_once_take_turns() {
        if let Some(raw) = TestDatabase::postgres() {
            instances_migrating_at_once_take_turns(&raw);
        }
    }

    #[test]
    fn sqlite_instances_migrating_at_once_take_turns() {
        instances_migrating_at_once_take_turns(&TestDatabase::sqlite());
    }

    #[test]
    fn an_unreachable_database_fails_after_the_bounded_wait_with_a_clear_message() {
        let db = Database::open(
            "postgres://memlayer:s3cret@127.0.0.1:1/memlayer",
            &options(),
        )
        .unwrap();
        let error = db.wait_until_reachable(Duration::from_secs(1)).unwrap_err();

        // It gave up on its own once the configured second had passed (no wall-clock
        // upper bound here: that is a benchmark's business on a shared machine).
        assert!(
            matches!(error, DatabaseError::Unreachable { waited, .. } if waited >= Duration::from_secs(1)),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("postgres://memlayer:***@127.0.0.1:1/memlayer"),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    fn a_missing_postgres_database_fails_at_once_with_the_cause() {
        let Some(server) = TestDatabase::postgres() else {
            return;
        };
        let url = format!(
            "{}_missing?password=s3cret",
            server
                .url()
                .rsplit_once('?')
                .map_or(server.url(), |(base, _)| base)
        );
        let db = Database::open(&url, &options()).unwrap();

        // Waiting a long time would be the old behaviour; the answer is immediate.
        let error = db
            .wait_until_reachable(Duration::from_secs(3_600))
            .unwrap_err();

        assert!(matches!(error, DatabaseError::Refused { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains("does not exist"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    fn a_sqlite_file_that_cannot_be_opened_fails_at_once_with_the_cause() {
        let raw = TestDatabase::sqlite();
        let dir = raw.sqlite_dir().unwrap();
        // A folder where the database file should be: no amount of waiting opens it.
        let path = dir.join("not-a-file");
        std::fs::create_dir_all(&path).unwrap();
        let db = Database::open(&format!("sqlite://{}", path.display()), &options()).unwrap();

        let error = db
            .wait_until_reachable(Duration::from_secs(3_600))
            .unwrap_err();

        assert!(matches!(error, DatabaseError::Refused { .. }), "{error}");
        assert!(
            error.to_string().to_lowercase().contains("unable to open"),
            "{error}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_embedded_database_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let raw = TestDatabase::sqlite();
        let folder = raw.sqlite_dir().unwrap().join("data");
        let file = folder.join("memlayer.db");
        let db = Database::open(&format!("sqlite://{}", file.display()), &options()).unwrap();
        db.migrate().unwrap();
        new_user(&db, "ada@example.com");

        let mode =
            |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&folder), 0o700);
        for name in ["memlayer.db", "memlayer.db-wal", "memlayer.db-shm"] {
            assert_eq!(mode(&folder.join(name)), 0o600, "{name}");
        }
    }
}

/// Three attempts a minute: one every 20 s, all three at once if need be.
const THREE_A_MINUTE: AttemptRate = AttemptRate {
    interval: TimeDelta::seconds(20),
    burst: TimeDelta::seconds(60),
};

const SECOND: i64 = 1_000_000;

fn spend(db: &Database, client: &str, now: DateTime<Utc>) -> Spent {
    AttemptBudget::spend(db, client, now, THREE_A_MINUTE).unwrap()
}

fn an_attempt_budget_admits_its_burst_then_refuses_until_it_refills(db: &Store) {
    let burst: Vec<Spent> = (0..4).map(|_| spend(db, "198.51.100.9", at(0))).collect();
    let too_early = spend(db, "198.51.100.9", at(20 * SECOND - 1));
    let refilled = spend(db, "198.51.100.9", at(20 * SECOND));
    let again = spend(db, "198.51.100.9", at(20 * SECOND));

    assert_eq!(burst[..3], [Spent::Admitted; 3]);
    assert_eq!(
        burst[3],
        Spent::Refused {
            until: at(20 * SECOND)
        }
    );
    assert_eq!(
        too_early,
        Spent::Refused {
            until: at(20 * SECOND)
        },
        "a refusal spends nothing"
    );
    assert_eq!(refilled, Spent::Admitted);
    assert_eq!(
        again,
        Spent::Refused {
            until: at(40 * SECOND)
        }
    );
}

fn each_client_has_its_own_attempt_budget(db: &Store) {
    for _ in 0..3 {
        spend(db, "198.51.100.9", at(0));
    }

    assert_eq!(spend(db, "2001:db8:1:2::/64", at(0)), Spent::Admitted);
    assert!(matches!(
        spend(db, "198.51.100.9", at(0)),
        Spent::Refused { .. }
    ));
}

fn a_refunded_attempt_can_be_spent_again(db: &Store) {
    for _ in 0..3 {
        spend(db, "198.51.100.9", at(0));
    }

    AttemptBudget::refund(&**db, "198.51.100.9", THREE_A_MINUTE).unwrap();
    AttemptBudget::refund(&**db, "never seen", THREE_A_MINUTE).unwrap();

    assert_eq!(spend(db, "198.51.100.9", at(0)), Spent::Admitted);
    assert!(matches!(
        spend(db, "198.51.100.9", at(0)),
        Spent::Refused { .. }
    ));
    assert_eq!(db.raw.count("SELECT COUNT(*) FROM attempt_budgets"), 1);
}

fn only_refilled_attempt_budgets_are_forgotten(db: &Store) {
    spend(db, "once", at(0));
    for _ in 0..3 {
        spend(db, "thrice", at(0));
    }

    // At 30 s, "once" is full again (its one attempt came back at 20 s); "thrice" has
    // one of its three back, and is remembered.
    let forgotten = db.forget_refilled(at(30 * SECOND)).unwrap();

    assert_eq!(forgotten, 1);
    assert_eq!(db.raw.count("SELECT COUNT(*) FROM attempt_budgets"), 1);
    assert_eq!(spend(db, "thrice", at(30 * SECOND)), Spent::Admitted);
    assert_eq!(
        spend(db, "thrice", at(30 * SECOND)),
        Spent::Refused {
            until: at(40 * SECOND)
        }
    );
    assert_eq!(spend(db, "once", at(30 * SECOND)), Spent::Admitted);
}

fn attempts_spent_at_once_never_overspend_a_budget(db: &Store) {
    let spent: Vec<Spent> = std::thread::scope(|scope| {
        let attempts: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| spend(db, "198.51.100.9", at(0))))
            .collect();
        attempts.into_iter().map(|a| a.join().unwrap()).collect()
    });

    let admitted = spent.iter().filter(|s| **s == Spent::Admitted).count();
    assert_eq!(admitted, 3, "{spent:?}");
}

/// The active leaf of `chat`, as stored.
fn active_leaf(db: &Database, chat: &Chat) -> Option<MessageId> {
    ChatRepository::find(db, chat.id)
        .unwrap()
        .unwrap()
        .0
        .active_message_id
}

fn ids(messages: &[Message]) -> Vec<MessageId> {
    messages.iter().map(|m| m.id).collect()
}

fn a_path_is_the_ancestors_of_its_end_with_every_siblings_ids(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let chat = new_chat(db, ada.id, "talk", at(1));
    let question = message(&chat, Role::User, "q", at(2));
    let first = reply_to(&question, Role::Assistant, "a1", at(3));
    let next = reply_to(&first, Role::User, "q2", at(4));
    let second = reply_to(&question, Role::Assistant, "a2", at(5));
    for m in [&question, &first, &next, &second] {
        assert!(append(db, m));
    }

    let active = db.path(None, chat.id, None, 10, usize::MAX).unwrap();
    let other = db
        .path(None, chat.id, Some(PathEnd::At(next.id)), 10, usize::MAX)
        .unwrap();

    assert_eq!(ids(&active), [second.id, question.id]);
    assert_eq!(active[0].sibling_ids, [first.id, second.id]);
    assert_eq!(ids(&other), [next.id, first.id, question.id]);
    assert_eq!(other[1].sibling_ids, [first.id, second.id]);
    assert_eq!(other[2].sibling_ids, [question.id]);
    let tree = db.list_oldest_first(None, chat.id, None, 10).unwrap();
    assert_eq!(ids(&tree), [question.id, first.id, next.id, second.id]);
    assert_eq!(tree[3].sibling_ids, [first.id, second.id]);
}

fn an_exchange_follows_the_chats_active_leaf(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let chat = new_chat(db, ada.id, "talk", at(1));
    let ada_now = Session::new(ada.id, 0);
    let exchange = |seconds: i64| {
        let question = message(&chat, Role::User, "q", at(seconds));
        let reply = reply_to(&question, Role::Assistant, "a", at(seconds + 1));
        assert!(db.append_exchange(ada_now, &question, &reply).unwrap());
        (question, reply)
    };

    let (first_q, first_a) = exchange(2);
    let (second_q, second_a) = exchange(4);

    let path = db
        .path(Some(ada_now), chat.id, None, 10, usize::MAX)
        .unwrap();
    assert_eq!(
        ids(&path),
        [second_a.id, second_q.id, first_a.id, first_q.id]
    );
    assert_eq!(path[1].parent_id, Some(first_a.id));
    assert_eq!(path[3].parent_id, None);
    assert_eq!(active_leaf(db, &chat), Some(second_a.id));
}

fn switching_to_a_message_activates_the_newest_leaf_below_it(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let chat = new_chat(db, ada.id, "talk", at(1));
    let question = message(&chat, Role::User, "q", at(2));
    let first = reply_to(&question, Role::Assistant, "a1", at(3));
    let first_next = reply_to(&first, Role::User, "q2", at(4));
    let second = reply_to(&question, Role::Assistant, "a2", at(5));
    for m in [&question, &first, &first_next, &second] {
        assert!(append(db, m));
    }

    assert_eq!(db.activate(chat.id, first.id).unwrap(), Some(first_next.id));
    assert_eq!(active_leaf(db, &chat), Some(first_next.id));
    assert_eq!(db.activate(chat.id, question.id).unwrap(), Some(second.id));
    assert_eq!(db.activate(chat.id, MessageId::generate()).unwrap(), None);
    assert_eq!(active_leaf(db, &chat), Some(second.id));
}

fn deleting_a_message_takes_its_subtree_and_moves_the_active_leaf_off_it(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let chat = new_chat(db, ada.id, "talk", at(1));
    let question = message(&chat, Role::User, "q", at(2));
    let first = reply_to(&question, Role::Assistant, "a1", at(3));
    let second = reply_to(&question, Role::Assistant, "a2", at(4));
    let second_next = reply_to(&second, Role::User, "q2", at(5));
    for m in [&question, &first, &second, &second_next] {
        assert!(append(db, m));
    }

    assert!(db.delete_subtree(chat.id, second.id).unwrap());
    assert_eq!(ids(&flat(db, chat.id)), [first.id, question.id]);
    assert_eq!(active_leaf(db, &chat), Some(first.id));
    assert!(!db.delete_subtree(chat.id, second.id).unwrap());
    assert!(db.delete_subtree(chat.id, question.id).unwrap());
    assert!(flat(db, chat.id).is_empty());
    assert_eq!(active_leaf(db, &chat), None);
}

fn a_message_is_found_only_in_its_own_chat(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let chat = new_chat(db, ada.id, "talk", at(1));
    let other = new_chat(db, ada.id, "other", at(1));
    let question = message(&chat, Role::User, "q", at(2));
    assert!(append(db, &question));

    assert_eq!(
        db.find_message(chat.id, question.id).unwrap(),
        Some(question.clone())
    );
    assert_eq!(db.find_message(other.id, question.id).unwrap(), None);
}

/// The migrations up to the one that made messages a tree (the previous release).
fn previous_release(raw: &TestDatabase) -> &'static [(&'static str, &'static str)] {
    if raw.url().starts_with("postgres") {
        &[
            (
                "20261126000000",
                include_str!(
                    "../../../migrations/postgres/2026-11-26-000000_create_accounts_chats_messages/up.sql"
                ),
            ),
            (
                "20261127000000",
                include_str!(
                    "../../../migrations/postgres/2026-11-27-000000_add_token_generation/up.sql"
                ),
            ),
            (
                "20261128000000",
                include_str!(
                    "../../../migrations/postgres/2026-11-28-000000_add_attempt_budgets/up.sql"
                ),
            ),
        ]
    } else {
        &[
            (
                "20261126000000",
                include_str!(
                    "../../../migrations/sqlite/2026-11-26-000000_create_accounts_chats_messages/up.sql"
                ),
            ),
            (
                "20261127000000",
                include_str!(
                    "../../../migrations/sqlite/2026-11-27-000000_add_token_generation/up.sql"
                ),
            ),
            (
                "20261128000000",
                include_str!(
                    "../../../migrations/sqlite/2026-11-28-000000_add_attempt_budgets/up.sql"
                ),
            ),
        ]
    }
}

/// A database at the previous release's migrations, with two chats of three messages
/// (the last two written in the same instant, told apart by id) and an empty chat,
/// then migrated: the store, the chats' ids and their messages' ids in order.
struct PreviousRelease {
    store: Store,
    chats: Vec<uuid::Uuid>,
    written: Vec<Vec<uuid::Uuid>>,
}

fn seeded_at_the_previous_release(raw: TestDatabase) -> PreviousRelease {
    raw.execute(
        "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
         run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    );
    for (version, sql) in previous_release(&raw) {
        raw.execute(sql);
        raw.execute(&format!(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('{version}')"
        ));
    }
    let user = uuid::Uuid::now_v7();
    raw.execute(&format!(
        "INSERT INTO users (id, email, password_hash, created_at) VALUES \
         ('{user}', 'ada@example.com', 'x', '2026-11-26T09:00:00.000000Z')"
    ));
    let chats: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::now_v7()).collect();
    let mut written: Vec<Vec<uuid::Uuid>> = vec![];
    for (n, chat) in chats.iter().enumerate() {
        raw.execute(&format!(
            "INSERT INTO chats (id, user_id, title, created_at) VALUES \
             ('{chat}', '{user}', 'c{n}', '2026-11-26T09:00:0{n}.000000Z')"
        ));
        if n == 2 {
            continue;
        }
        let mut ids: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::now_v7()).collect();
        ids[1..].sort();
        for (i, (id, at)) in ids.iter().zip(["01", "02", "02"]).enumerate() {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            raw.execute(&format!(
                "INSERT INTO messages (id, chat_id, user_id, role, content, created_at) VALUES \
                 ('{id}', '{chat}', '{user}', '{role}', 'm{i}', '2026-11-26T09:01:{at}.000000Z')"
            ));
        }
        written.push(ids);
    }

    PreviousRelease {
        store: Store::new(raw),
        chats,
        written,
    }
}

fn chats_and_messages_of_the_previous_release_become_one_path_each(seeded: &PreviousRelease) {
    let PreviousRelease {
        store,
        chats,
        written,
    } = seeded;
    for (chat, ids) in chats.iter().zip(written) {
        let chat = ChatId::from_uuid(*chat);
        let all = store.list_oldest_first(None, chat, None, 10).unwrap();
        let expected: Vec<MessageId> = ids.iter().map(|id| MessageId::from_uuid(*id)).collect();
        assert_eq!(ids_of(&all), expected);
        let parents: Vec<Option<MessageId>> = all.iter().map(|m| m.parent_id).collect();
        assert_eq!(parents, [None, Some(expected[0]), Some(expected[1])]);
        assert!(all.iter().all(|m| m.status == MessageStatus::Complete));
        let found = ChatRepository::find(&**store, chat).unwrap().unwrap().0;
        assert_eq!(found.active_message_id, Some(expected[2]));
        let path = store.path(None, chat, None, 10, usize::MAX).unwrap();
        assert_eq!(
            ids_of(&path),
            expected.iter().rev().copied().collect::<Vec<_>>()
        );
    }
    let empty = ChatRepository::find(&**store, ChatId::from_uuid(chats[2]))
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(empty.active_message_id, None);
}

fn ids_of(messages: &[Message]) -> Vec<MessageId> {
    ids(messages)
}

fn a_chat_with_messages_but_no_active_leaf_shows_the_path_of_its_newest(db: &Store) {
    let ada = new_user(db, "ada@example.com");
    let chat = new_chat(db, ada.id, "talk", at(1));
    let question = message(&chat, Role::User, "q", at(2));
    let answer = reply_to(&question, Role::Assistant, "a", at(3));
    for m in [&question, &answer] {
        assert!(append(db, m));
    }
    db.raw.execute(&format!(
        "UPDATE chats SET active_message_id = NULL WHERE id = '{}'",
        chat.id
    ));

    let path = db.path(None, chat.id, None, 10, usize::MAX).unwrap();

    assert_eq!(ids(&path), [answer.id, question.id]);
}

/// Folders, pinned and archived chats, and search: the repositories of issue 20.
mod organising {
    use memlayer_domain::{
        ChatCursor, ChatFilter, ChatUpdate, Folder, FolderId, FolderName, SearchOrder, SearchQuery,
        StoredHit,
    };
    use memlayer_ports::{FolderRepository, SearchIndex, UpdateChatError};

    use super::*;

    memlayer_testkit::on_both_backends!(
        crate::Store::new;
        folders_read_back_and_list_oldest_first_and_only_the_owners,
        deleting_a_folder_keeps_its_chats_in_no_folder,
        a_chat_update_sets_only_what_it_gives,
        filing_a_chat_in_a_folder_deleted_meanwhile_changes_nothing,
        the_organised_list_puts_pinned_first_leaves_archived_out_and_pages_across_groups,
        the_organised_list_keeps_one_folder_or_the_archived_chats,
        search_finds_the_owners_messages_and_titles_whatever_the_case_and_accents,
        search_follows_deleted_messages_chats_accounts_and_renamed_titles,
        search_pages_newest_first_after_a_cursor,
        search_by_relevance_puts_the_best_match_first,
        a_revoked_session_finds_nothing,
        a_search_without_words_finds_nothing,
        deleting_an_account_deletes_its_folders,
    );

    fn folder(db: &Database, owner: UserId, name: &str, created_at: DateTime<Utc>) -> Folder {
        let folder = Folder {
            id: FolderId::generate(),
            owner,
            name: FolderName::parse(name).unwrap(),
            created_at,
        };
        assert!(FolderRepository::create(db, &folder, 0).unwrap());
        folder
    }

    fn post(db: &Database, chat: &Chat, content: &str, created_at: DateTime<Utc>) -> Message {
        let message = message(chat, Role::User, content, created_at);
        assert!(append(db, &message));
        message
    }

    fn search(db: &Database, user: UserId, q: &str) -> Vec<StoredHit> {
        let query = SearchQuery::parse(q).unwrap();
        db.search(
            Session::new(user, 0),
            &query,
            SearchOrder::Newest,
            None,
            100,
        )
        .unwrap()
    }

    fn texts(hits: &[StoredHit]) -> Vec<&str> {
        hits.iter().map(|hit| hit.text.as_str()).collect()
    }

    fn update(db: &Database, chat: &Chat, change: ChatUpdate) {
        assert!(ChatRepository::update(db, chat.id, &change).unwrap());
    }

    fn organised(db: &Database, user: UserId, filter: ChatFilter) -> Vec<ChatId> {
        db.list_organised(Session::new(user, 0), filter, None, 100)
            .unwrap()
            .into_iter()
            .map(|chat| chat.id)
            .collect()
    }

    fn folders_read_back_and_list_oldest_first_and_only_the_owners(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let bob = new_user(db, "bob@example.com");
        let later = folder(db, ada.id, "Work", at(2));
        let first = folder(db, ada.id, "Home", at(1));
        folder(db, bob.id, "Bob's", at(0));

        assert_eq!(
            FolderRepository::find(&**db, first.id).unwrap(),
            Some(first.clone())
        );
        assert_eq!(
            FolderRepository::list_for_owner(&**db, Session::new(ada.id, 0)).unwrap(),
            [first.clone(), later]
        );
        assert!(
            FolderRepository::rename(&**db, first.id, &FolderName::parse("House").unwrap())
                .unwrap()
        );
        assert_eq!(
            FolderRepository::find(&**db, first.id)
                .unwrap()
                .unwrap()
                .name
                .as_str(),
            "House"
        );
        assert!(
            FolderRepository::list_for_owner(&**db, Session::new(ada.id, 1))
                .unwrap()
                .is_empty()
        );
    }

    fn deleting_a_folder_keeps_its_chats_in_no_folder(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let work = folder(db, ada.id, "Work", at(0));
        let chat = new_chat(db, ada.id, "Plans", at(1));
        update(
            db,
            &chat,
            ChatUpdate {
                folder: Some(Some(work.id)),
                ..ChatUpdate::default()
            },
        );

        assert!(FolderRepository::delete(&**db, work.id).unwrap());

        let (kept, _) = ChatRepository::find(&**db, chat.id).unwrap().unwrap();
        assert_eq!(kept.organisation.folder, None);
        assert!(!FolderRepository::delete(&**db, work.id).unwrap());
        assert_eq!(FolderRepository::find(&**db, work.id).unwrap(), None);
    }

    fn a_chat_update_sets_only_what_it_gives(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let work = folder(db, ada.id, "Work", at(0));
        let chat = new_chat(db, ada.id, "Plans", at(1));
        let change = ChatUpdate {
            pinned: Some(true),
            archived: Some(true),
            folder: Some(Some(work.id)),
            ..ChatUpdate::default()
        };
        update(db, &chat, change.clone());
        let (stored, _) = ChatRepository::find(&**db, chat.id).unwrap().unwrap();
        assert_eq!(stored, change.applied_to(chat.clone()));

        let rename = ChatUpdate {
            title: Some(ChatTitle::parse("New").unwrap()),
            folder: Some(None),
            ..ChatUpdate::default()
        };
        update(db, &chat, rename.clone());
        let (renamed, _) = ChatRepository::find(&**db, chat.id).unwrap().unwrap();
        assert_eq!(renamed, rename.applied_to(stored));
        assert!(renamed.organisation.pinned && renamed.organisation.archived);
        assert!(!ChatRepository::update(&**db, ChatId::generate(), &rename).unwrap());
    }

    fn filing_a_chat_in_a_folder_deleted_meanwhile_changes_nothing(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let chat = new_chat(db, ada.id, "Plans", at(1));
        let change = ChatUpdate {
            pinned: Some(true),
            folder: Some(Some(FolderId::generate())),
            ..ChatUpdate::default()
        };

        let result = ChatRepository::update(&**db, chat.id, &change);

        assert!(
            matches!(result, Err(UpdateChatError::FolderGone)),
            "{result:?}"
        );
        assert_eq!(
            ChatRepository::find(&**db, chat.id).unwrap().unwrap().0,
            chat
        );
    }

    fn the_organised_list_puts_pinned_first_leaves_archived_out_and_pages_across_groups(
        db: &Store,
    ) {
        let ada = new_user(db, "ada@example.com");
        let chats: Vec<Chat> = (0..6)
            .map(|n| new_chat(db, ada.id, &format!("c{n}"), at(n)))
            .collect();
        let pin = ChatUpdate {
            pinned: Some(true),
            ..ChatUpdate::default()
        };
        update(db, &chats[1], pin.clone());
        update(db, &chats[3], pin);
        update(
            db,
            &chats[4],
            ChatUpdate {
                archived: Some(true),
                ..ChatUpdate::default()
            },
        );
        let expected = vec![
            chats[3].id,
            chats[1].id,
            chats[5].id,
            chats[2].id,
            chats[0].id,
        ];

        assert_eq!(organised(db, ada.id, ChatFilter::default()), expected);
        let session = Session::new(ada.id, 0);
        let mut paged = Vec::new();
        let mut after: Option<ChatCursor> = None;
        loop {
            let page = db
                .list_organised(session, ChatFilter::default(), after, 1)
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.organised_cursor());
            paged.extend(page.iter().map(|chat| chat.id));
        }
        assert_eq!(paged, expected);
        assert!(
            db.list_organised(Session::new(ada.id, 1), ChatFilter::default(), None, 10)
                .unwrap()
                .is_empty()
        );
    }

    fn the_organised_list_keeps_one_folder_or_the_archived_chats(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let work = folder(db, ada.id, "Work", at(0));
        let filed = new_chat(db, ada.id, "Filed", at(1));
        let archived = new_chat(db, ada.id, "Old", at(2));
        new_chat(db, ada.id, "Loose", at(3));
        update(
            db,
            &filed,
            ChatUpdate {
                folder: Some(Some(work.id)),
                ..ChatUpdate::default()
            },
        );
        update(
            db,
            &archived,
            ChatUpdate {
                archived: Some(true),
                ..ChatUpdate::default()
            },
        );

        let in_work = ChatFilter {
            archived: false,
            folder: Some(work.id),
        };
        let only_archived = ChatFilter {
            archived: true,
            folder: None,
        };
        assert_eq!(organised(db, ada.id, in_work), [filed.id]);
        assert_eq!(organised(db, ada.id, only_archived), [archived.id]);
    }

    fn search_finds_the_owners_messages_and_titles_whatever_the_case_and_accents(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let bob = new_user(db, "bob@example.com");
        let chat = new_chat(db, ada.id, "Crème brûlée recipes", at(0));
        let hit = post(db, &chat, "The CAFÉ near the station", at(1));
        post(db, &chat, "decaf is not a prefix match", at(2));
        let bobs = new_chat(db, bob.id, "Bob", at(3));
        post(db, &bobs, "café for Bob", at(4));
        update(
            db,
            &chat,
            ChatUpdate {
                archived: Some(true),
                ..ChatUpdate::default()
            },
        );

        let found = search(db, ada.id, "caf");
        assert_eq!(texts(&found), ["The CAFÉ near the station"]);
        assert_eq!(found[0].message_id, Some(hit.id));
        assert_eq!(found[0].role, Some(Role::User));
        assert_eq!(found[0].chat_title.as_str(), "Crème brûlée recipes");
        assert_eq!(
            texts(&search(db, ada.id, "CAFE statio")),
            ["The CAFÉ near the station"]
        );
        assert!(search(db, ada.id, "cafe bob").is_empty());

        let titles = search(db, ada.id, "creme BRULEE");
        assert_eq!(texts(&titles), ["Crème brûlée recipes"]);
        assert_eq!((titles[0].message_id, titles[0].role), (None, None));
        assert_eq!(titles[0].created_at, chat.created_at);
    }

    fn search_follows_deleted_messages_chats_accounts_and_renamed_titles(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let kept = new_chat(db, ada.id, "Kept", at(0));
        let gone = new_chat(db, ada.id, "Gone", at(1));
        post(db, &kept, "lisbon tram", at(2));
        post(db, &gone, "lisbon castle", at(3));
        assert_eq!(search(db, ada.id, "lisbon").len(), 2);

        assert!(ChatRepository::delete(&**db, gone.id).unwrap());
        assert_eq!(texts(&search(db, ada.id, "lisbon")), ["lisbon tram"]);
        assert!(search(db, ada.id, "gone").is_empty());

        update(
            db,
            &kept,
            ChatUpdate {
                title: Some(ChatTitle::parse("Porto").unwrap()),
                ..ChatUpdate::default()
            },
        );
        assert!(search(db, ada.id, "kept").is_empty());
        assert_eq!(texts(&search(db, ada.id, "porto")), ["Porto"]);
        assert_eq!(search(db, ada.id, "lisbon")[0].chat_title.as_str(), "Porto");

        assert!(UserRepository::delete(&**db, Session::new(ada.id, 0)).unwrap());
        if db.raw.sqlite_dir().is_some() {
            assert_eq!(db.raw.count("SELECT COUNT(*) FROM search_docs"), 0);
        }
    }

    fn search_pages_newest_first_after_a_cursor(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let chat = new_chat(db, ada.id, "Notes", at(0));
        for n in 1..=5 {
            post(db, &chat, &format!("note {n}"), at(n));
        }
        let query = SearchQuery::parse("note").unwrap();
        let session = Session::new(ada.id, 0);
        let mut read = Vec::new();
        let mut after = None;
        loop {
            let page = db
                .search(session, &query, SearchOrder::Newest, after, 2)
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.cursor());
            read.extend(page.into_iter().map(|hit| hit.text));
        }
        // "Notes" (the title) is the oldest.
        assert_eq!(
            read,
            ["note 5", "note 4", "note 3", "note 2", "note 1", "Notes"]
        );
    }

    fn search_by_relevance_puts_the_best_match_first(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let chat = new_chat(db, ada.id, "Chat", at(0));
        post(
            db,
            &chat,
            "pasta pasta pasta: pasta with pasta, and more pasta",
            at(1),
        );
        post(
            db,
            &chat,
            "a long message about many things, one of which is pasta, among words words words words",
            at(2),
        );
        let query = SearchQuery::parse("pasta").unwrap();

        let best = db
            .search(
                Session::new(ada.id, 0),
                &query,
                SearchOrder::Relevance,
                None,
                10,
            )
            .unwrap();

        assert_eq!(best.len(), 2);
        assert!(
            best[0].text.starts_with("pasta pasta"),
            "{:?}",
            texts(&best)
        );
    }

    fn a_revoked_session_finds_nothing(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let chat = new_chat(db, ada.id, "Chat", at(0));
        post(db, &chat, "secret plans", at(1));
        let query = SearchQuery::parse("secret").unwrap();

        let found = db
            .search(
                Session::new(ada.id, 1),
                &query,
                SearchOrder::Newest,
                None,
                10,
            )
            .unwrap();

        assert!(found.is_empty());
    }

    fn a_search_without_words_finds_nothing(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let chat = new_chat(db, ada.id, "Chat", at(0));
        post(db, &chat, "a & b | !c (d) 'e' \"f\" g:* <-> h", at(1));

        assert!(search(db, ada.id, "&|!():*'\"").is_empty());
        assert_eq!(search(db, ada.id, "!c & (d)|:*").len(), 1);
        assert_eq!(search(db, ada.id, "\"f\" <-> h").len(), 1);
    }

    fn deleting_an_account_deletes_its_folders(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let work = folder(db, ada.id, "Work", at(0));

        assert!(UserRepository::delete(&**db, Session::new(ada.id, 0)).unwrap());

        assert_eq!(FolderRepository::find(&**db, work.id).unwrap(), None);
    }
}

/// A database at the migration head before search: messages stored then are found once
/// it is migrated.
mod search_migration {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, PgConnection, RunQueryDsl, SqliteConnection};
    use diesel_migrations::{FileBasedMigrations, MigrationHarness};
    use memlayer_domain::{SearchOrder, SearchQuery};
    use memlayer_ports::SearchIndex;
    use memlayer_testkit::TestDatabase;

    use super::*;

    const NEW: &str = "search_and_folders";

    /// Runs the pending migrations of `folder` on `conn`, up to the one whose name holds
    /// `stop` (not that one; all of them for `None`).
    fn migrate_until<
        C: MigrationHarness<B> + Connection<Backend = B>,
        B: diesel::backend::Backend,
    >(
        conn: &mut C,
        folder: &str,
        stop: Option<&str>,
    ) {
        let dir = format!("{}/../../migrations/{folder}", env!("CARGO_MANIFEST_DIR"));
        let source = FileBasedMigrations::from_path(dir).unwrap();
        let pending = conn.pending_migrations(source).unwrap();
        for migration in pending {
            if stop.is_some_and(|stop| migration.name().to_string().contains(stop)) {
                break;
            }
            conn.run_migration(&migration).unwrap();
        }
    }

    /// Runs every migration before search's on `conn`.
    fn before_search<
        C: MigrationHarness<B> + Connection<Backend = B>,
        B: diesel::backend::Backend,
    >(
        conn: &mut C,
        folder: &str,
    ) {
        migrate_until(conn, folder, Some(NEW));
    }

    const OLD_DATA: &str = "
        INSERT INTO users (id, email, password_hash, created_at)
            VALUES ('0194f4c2-0000-7000-8000-000000000001', 'old@example.com', 'x',
                    '2026-11-26T09:00:00.000000Z');
        INSERT INTO chats (id, user_id, title, created_at)
            VALUES ('0194f4c2-0000-7000-8000-000000000002',
                    '0194f4c2-0000-7000-8000-000000000001', 'Vieux chat',
                    '2026-11-26T09:00:01.000000Z');
        INSERT INTO messages (id, chat_id, user_id, role, content, created_at)
            VALUES ('0194f4c2-0000-7000-8000-000000000003',
                    '0194f4c2-0000-7000-8000-000000000002',
                    '0194f4c2-0000-7000-8000-000000000001', 'user',
                    'Où est la bibliothèque ?', '2026-11-26T09:00:02.000000Z');";

    fn migrated_after_storing(raw: TestDatabase) -> Vec<String> {
        match raw.sqlite_dir() {
            Some(_) => {
                let mut conn =
                    SqliteConnection::establish(raw.url().trim_start_matches("sqlite://")).unwrap();
                before_search(&mut conn, "sqlite");
                conn.batch_execute(OLD_DATA).unwrap();
            }
            None => {
                let mut conn = PgConnection::establish(raw.url()).unwrap();
                before_search(&mut conn, "postgres");
                conn.batch_execute(OLD_DATA).unwrap();
            }
        }
        let store = super::Store::new(raw);
        let query = SearchQuery::parse("BIBLIOTHEQUE").unwrap();
        let user = UserId::from_uuid(
            uuid::Uuid::parse_str("0194f4c2-0000-7000-8000-000000000001").unwrap(),
        );
        let mut found: Vec<String> = store
            .search(Session::new(user, 0), &query, SearchOrder::Newest, None, 10)
            .unwrap()
            .into_iter()
            .map(|hit| hit.text)
            .collect();
        let title = SearchQuery::parse("vieux").unwrap();
        found.extend(
            store
                .search(Session::new(user, 0), &title, SearchOrder::Newest, None, 10)
                .unwrap()
                .into_iter()
                .map(|hit| hit.text),
        );
        found
    }

    #[test]
    fn messages_stored_before_search_existed_are_found_once_migrated_on_sqlite() {
        assert_eq!(
            migrated_after_storing(TestDatabase::sqlite()),
            ["Où est la bibliothèque ?", "Vieux chat"]
        );
    }

    /// The write path's migrations (`memlayer_fold`'s ASCII path, the inlined vector
    /// function, triggers instead of generated columns; then the reordered fold table and
    /// the tag put on by `replace`) change no stored vector: every message and title
    /// indexed by the first definition gets the same vector from the latest.
    #[test]
    fn the_search_write_path_migration_indexes_exactly_as_before_on_postgres() {
        let Some(raw) = TestDatabase::postgres() else {
            return;
        };
        let mut conn = PgConnection::establish(raw.url()).unwrap();
        migrate_until(&mut conn, "postgres", Some("search_write_path"));
        conn.batch_execute(OLD_DATA).unwrap();
        // Every ASCII character, in ASCII text and (after an `é`) in text that takes
        // the fold's non-ASCII path.
        let mut texts: Vec<String> = (1u8..=127)
            .flat_map(|byte| {
                let c = char::from(byte);
                [format!("a{c}b C"), format!("é{c}b C")]
            })
            .collect();
        texts.extend([
            String::new(),
            memlayer_domain::FOLD_FROM.to_owned(),
            "Where's the café? \"Ça va\" — à 3.14 (e-mail: ada@example.com) https://x.org/p?q=1 ‘ok’ …".to_owned(),
            "İstanbul ıı ŁÓDŹ ñ Æ ß 東京 🙂 tab\tnew\nline".to_owned(),
            "The QUICK brown fox; jumps_over [the] {lazy} dog! #42 $5 50% a|b ~x `y` ^z".to_owned(),
            "«Guillemets» “curly” ‘single’ en–dash em—dash ellipsis… 0123456789".to_owned(),
            "Cafe\u{301} combining, ÀÉÎÕÜ upper, àéîõü lower".to_owned(),
            // Long enough for the bounded way (a run of over 508 characters in over
            // 1,000 bytes), short enough that the previous definition indexed it.
            format!("{} then {} and İSTANBUL", "x".repeat(700), "é".repeat(300)),
        ]);
        for (n, text) in texts.iter().enumerate() {
            diesel::sql_query(
                "INSERT INTO messages (id, chat_id, user_id, role, content, created_at) VALUES \
                 (gen_random_uuid(), '0194f4c2-0000-7000-8000-000000000002', \
                  '0194f4c2-0000-7000-8000-000000000001', 'user', $1, now() + $2 * interval '1 ms')",
            )
            .bind::<diesel::sql_types::Text, _>(text)
            .bind::<diesel::sql_types::Integer, _>(i32::try_from(n).unwrap())
            .execute(&mut conn)
            .unwrap();
        }
        conn.batch_execute(
            "CREATE TABLE vectors_before AS SELECT id, search_tsv FROM messages \
             UNION ALL SELECT id, search_tsv FROM chats",
        )
        .unwrap();
        migrate_until(&mut conn, "postgres", None);
        // Through the new triggers: rewrite every row.
        conn.batch_execute("UPDATE messages SET content = content; UPDATE chats SET title = title")
            .unwrap();
        #[derive(diesel::QueryableByName)]
        struct Counted {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            rows: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            differ: i64,
        }
        let counted: Counted = diesel::sql_query(
            "SELECT count(*) AS rows, \
                    count(*) FILTER (WHERE now.search_tsv IS DISTINCT FROM b.search_tsv) AS differ \
             FROM vectors_before b \
             JOIN (SELECT id, search_tsv FROM messages UNION ALL SELECT id, search_tsv FROM chats) now \
             USING (id)",
        )
        .get_result(&mut conn)
        .unwrap();
        assert_eq!(counted.rows, i64::try_from(texts.len()).unwrap() + 2);
        assert_eq!(counted.differ, 0);
    }

    #[test]
    fn messages_stored_before_search_existed_are_found_once_migrated_on_postgres() {
        if let Some(raw) = TestDatabase::postgres() {
            assert_eq!(
                migrated_after_storing(raw),
                ["Où est la bibliothèque ?", "Vieux chat"]
            );
        }
    }
}

/// Replies as they are written (`ReplyRepository`): started, appended to in batches,
/// finished, stopped, watched and reaped, the same on both databases.
mod replies {
    use std::time::Duration;

    use memlayer_domain::{SearchOrder, SearchQuery};
    use memlayer_ports::{ReplyRepository, ReplyState, SearchIndex, StartedReply};

    use super::*;

    memlayer_testkit::on_both_backends!(
        crate::Store::new;
        a_reply_is_started_appended_to_in_batches_and_finished,
        a_batch_whose_answer_was_lost_is_not_appended_twice,
        a_chat_takes_one_generating_reply_at_a_time,
        a_user_takes_at_most_so_many_generating_replies,
        a_stop_request_reaches_the_reply_through_append_and_watch,
        replies_silent_too_long_are_reaped_as_failed_with_their_text,
        a_reply_whose_chat_was_deleted_is_gone,
        a_reply_enters_the_search_index_when_it_ends,
    );

    const GENERATING: ReplyState = ReplyState::Generating {
        stop_requested: false,
    };

    fn pieces(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|&text| text.to_owned()).collect()
    }

    /// A new question and its reply, `generating`, started at `at(seconds)`.
    fn started(db: &Database, chat: &Chat, seconds: i64) -> (Message, Message) {
        let question = message(chat, Role::User, "q", at(seconds));
        let reply = Message {
            content: MessageContent::from_trusted(String::new()),
            status: MessageStatus::Generating,
            ..reply_to(&question, Role::Assistant, "unused", at(seconds + 1))
        };
        let outcome = db.start(&question, true, &reply, allow(10), DAY).unwrap();
        assert_eq!(
            outcome,
            StartedReply::Started {
                question_siblings: vec![question.id],
                reply_siblings: vec![reply.id],
            }
        );
        (question, reply)
    }

    fn state(db: &Database, chat: &Chat, reply: &Message) -> (MessageStatus, String, Vec<usize>) {
        let stored = db.read(chat.id, reply.id).unwrap().unwrap();
        (
            stored.message.status,
            stored.message.content.as_str().to_owned(),
            stored.piece_ends,
        )
    }

    fn a_reply_is_started_appended_to_in_batches_and_finished(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let chat = new_chat(db, ada.id, "talk", at(1));
        let (_, reply) = started(db, &chat, 2);
        assert_eq!(active_leaf(db, &chat), Some(reply.id));
        assert_eq!(
            state(db, &chat, &reply),
            (MessageStatus::Generating, String::new(), vec![])
        );

        assert_eq!(
            db.append_pieces(reply.id, 0, 0, &pieces(&["Hé"])).unwrap(),
            GENERATING
        );
        assert_eq!(
            db.append_pieces(reply.id, 1, 2, &pieces(&["l", "lo"]))
                .unwrap(),
            GENERATING
        );
        assert_eq!(
            state(db, &chat, &reply),
            (MessageStatus::Generating, "Héllo".into(), vec![2, 3, 5])
        );
        let done = db
            .finish(
                &reply,
                "Héllo!",
                &[2, 3, 5, 6],
                MessageStatus::Complete,
                Some(USAGE),
                DAY,
            )
            .unwrap()
            .unwrap();

        assert_eq!(
            (done.id, done.status, done.content.as_str()),
            (reply.id, MessageStatus::Complete, "Héllo!")
        );
        assert_eq!(state(db, &chat, &reply).2, [2, 3, 5, 6]);
        // Ended: nothing more is appended, and it ends once.
        assert_eq!(
            db.append_pieces(reply.id, 4, 6, &pieces(&["x"])).unwrap(),
            ReplyState::Ended
        );
        assert_eq!(
            db.finish(&reply, "", &[], MessageStatus::Stopped, Some(USAGE), DAY)
                .unwrap(),
            None
        );
        assert_eq!(state(db, &chat, &reply).1, "Héllo!");
    }

    fn a_batch_whose_answer_was_lost_is_not_appended_twice(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let chat = new_chat(db, ada.id, "talk", at(1));
        let (_, reply) = started(db, &chat, 2);
        db.append_pieces(reply.id, 0, 0, &pieces(&["a", "b"]))
            .unwrap();

        // The same batch again (its first answer lost): stored once.
        assert_eq!(
            db.append_pieces(reply.id, 0, 0, &pieces(&["a", "b"]))
                .unwrap(),
            GENERATING
        );
        // The same, with the pieces that came since: those follow.
        assert_eq!(
            db.append_pieces(reply.id, 0, 0, &pieces(&["a", "b", "ç", "d"]))
                .unwrap(),
            GENERATING
        );
        assert_eq!(
            state(db, &chat, &reply),
            (MessageStatus::Generating, "abçd".into(), vec![1, 2, 3, 4])
        );
        // A batch out of step with what is stored ends the reply's writing.
        assert_eq!(
            db.append_pieces(reply.id, 9, 9, &pieces(&["z"])).unwrap(),
            ReplyState::Ended
        );
        assert_eq!(state(db, &chat, &reply).1, "abçd");
    }

    fn a_chat_takes_one_generating_reply_at_a_time(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let chat = new_chat(db, ada.id, "talk", at(1));
        let other = new_chat(db, ada.id, "other", at(1));
        let (_, reply) = started(db, &chat, 2);
        let question = message(&chat, Role::User, "again", at(5));
        let second = Message {
            content: MessageContent::from_trusted(String::new()),
            status: MessageStatus::Generating,
            ..reply_to(&question, Role::Assistant, "unused", at(6))
        };

        assert!(spending(db, chat.id, ada.id).in_chat);
        assert!(!spending(db, other.id, ada.id).in_chat);
        assert_eq!(
            db.start(&question, true, &second, allow(10), DAY).unwrap(),
            StartedReply::Busy
        );
        assert_eq!(
            db.raw_count("messages", &chat),
            2,
            "nothing stored when busy"
        );
        started(db, &other, 3);
        db.finish(&reply, "a", &[1], MessageStatus::Stopped, Some(USAGE), DAY)
            .unwrap()
            .unwrap();
        assert!(!spending(db, chat.id, ada.id).in_chat);
        assert!(matches!(
            db.start(&question, true, &second, allow(10), DAY).unwrap(),
            StartedReply::Started { .. }
        ));
    }

    fn a_user_takes_at_most_so_many_generating_replies(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let bob = new_user(db, "bob@example.com");
        let (first, second) = (
            new_chat(db, ada.id, "one", at(1)),
            new_chat(db, ada.id, "two", at(1)),
        );
        started(db, &first, 2);
        let question = message(&second, Role::User, "q", at(5));
        let reply = Message {
            content: MessageContent::from_trusted(String::new()),
            status: MessageStatus::Generating,
            ..reply_to(&question, Role::Assistant, "unused", at(6))
        };

        assert_eq!(
            db.start(&question, true, &reply, allow(1), DAY).unwrap(),
            StartedReply::UserBusy
        );
        assert_eq!(db.raw_count("messages", &second), 0, "nothing stored");
        let generating = spending(db, second.id, ada.id);
        assert_eq!((generating.in_chat, generating.of_user), (false, 1));
        assert!(spending(db, first.id, ada.id).in_chat);
        assert_eq!(spending(db, first.id, bob.id).of_user, 0);
        assert!(matches!(
            db.start(&question, true, &reply, allow(2), DAY).unwrap(),
            StartedReply::Started { .. }
        ));
    }

    fn a_stop_request_reaches_the_reply_through_append_and_watch(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let chat = new_chat(db, ada.id, "talk", at(1));
        let (question, reply) = started(db, &chat, 2);
        let unknown = MessageId::generate();

        assert!(
            !db.request_stop(chat.id, question.id).unwrap(),
            "a question does not generate"
        );
        assert!(
            !db.request_stop(ChatId::generate(), reply.id).unwrap(),
            "another chat's id"
        );
        assert!(db.request_stop(chat.id, reply.id).unwrap());

        let asked = ReplyState::Generating {
            stop_requested: true,
        };
        assert_eq!(
            db.watch(&[reply.id, unknown], false).unwrap(),
            [asked, ReplyState::Gone]
        );
        assert_eq!(
            db.append_pieces(reply.id, 0, 0, &pieces(&["a"])).unwrap(),
            asked
        );
        db.finish(&reply, "a", &[1], MessageStatus::Stopped, Some(USAGE), DAY)
            .unwrap()
            .unwrap();
        assert!(!db.request_stop(chat.id, reply.id).unwrap(), "ended");
        assert_eq!(db.watch(&[reply.id], true).unwrap(), [ReplyState::Ended]);
    }

    fn replies_silent_too_long_are_reaped_as_failed_with_their_text(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let chat = new_chat(db, ada.id, "talk", at(1));
        let (_, silent) = started(db, &chat, 2);
        db.append_pieces(silent.id, 0, 0, &pieces(&["so far"]))
            .unwrap();
        // Heartbeats are the database's time: make this one an hour old.
        db.raw.execute(&format!(
            "UPDATE messages SET heartbeat_at = '2000-01-01T00:00:00.000000Z' WHERE id = '{}'",
            silent.id
        ));
        let other = new_chat(db, ada.id, "other", at(1));
        let (_, alive) = started(db, &other, 2);

        assert_eq!(db.reap(Duration::from_secs(3600)).unwrap(), 1);

        assert_eq!(
            state(db, &chat, &silent),
            (MessageStatus::Failed, "so far".into(), vec![6])
        );
        assert_eq!(state(db, &other, &alive).0, MessageStatus::Generating);
        assert_eq!(
            db.append_pieces(silent.id, 1, 6, &pieces(&["late"]))
                .unwrap(),
            ReplyState::Ended
        );
        assert!(!spending(db, chat.id, ada.id).in_chat);
        // Everything generating, whatever its heartbeat, as the next start on SQLite
        // fails it.
        assert_eq!(db.fail_generating().unwrap(), 1);
        assert_eq!(state(db, &other, &alive).0, MessageStatus::Failed);
    }

    fn a_reply_whose_chat_was_deleted_is_gone(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let chat = new_chat(db, ada.id, "talk", at(1));
        let (question, reply) = started(db, &chat, 2);

        assert!(ChatRepository::delete(&**db, chat.id).unwrap());

        assert_eq!(
            db.append_pieces(reply.id, 0, 0, &pieces(&["a"])).unwrap(),
            ReplyState::Gone
        );
        assert_eq!(
            db.finish(&reply, "", &[], MessageStatus::Complete, Some(USAGE), DAY)
                .unwrap(),
            None
        );
        assert_eq!(db.watch(&[reply.id], true).unwrap(), [ReplyState::Gone]);
        assert_eq!(db.read(chat.id, reply.id).unwrap(), None);
        assert_eq!(
            db.start(&question, true, &reply, allow(10), DAY).unwrap(),
            StartedReply::Gone
        );
    }

    fn a_reply_enters_the_search_index_when_it_ends(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let chat = new_chat(db, ada.id, "talk", at(1));
        let (_, reply) = started(db, &chat, 2);
        let (_, discarded) = started(db, &new_chat(db, ada.id, "other", at(1)), 2);
        let query = SearchQuery::parse("zebra").unwrap();
        let found = || {
            db.search(
                Session::new(ada.id, 0),
                &query,
                SearchOrder::Newest,
                None,
                10,
            )
            .unwrap()
            .len()
        };
        db.append_pieces(reply.id, 0, 0, &pieces(&["a zebra"]))
            .unwrap();
        db.append_pieces(discarded.id, 0, 0, &pieces(&["zebra too"]))
            .unwrap();
        assert_eq!(found(), 0, "found while generating");

        db.finish(
            &reply,
            "a zebra crossed",
            &[7, 15],
            MessageStatus::Complete,
            Some(USAGE),
            DAY,
        )
        .unwrap()
        .unwrap();
        assert!(db.delete_subtree(discarded.chat_id, discarded.id).unwrap());

        assert_eq!(found(), 1);
        assert!(db.delete_subtree(chat.id, reply.id).unwrap());
        assert_eq!(found(), 0);
    }
}

mod operators {
    use memlayer_domain::AccountRole;
    use memlayer_ports::{
        AccountChange, AccountChangeError, ReplyRepository, ReplyState, StartedReply,
    };

    use super::*;

    memlayer_testkit::on_both_backends!(
        crate::Store::new;
        a_finished_reply_stores_its_usage_and_adds_it_to_the_day,
        the_daily_quota_refuses_a_start_with_the_users_own_limit_first,
        disabling_an_account_revokes_its_tokens_and_stops_its_replies,
        the_last_enabled_admin_cannot_be_removed,
        accounts_are_listed_newest_first_by_email_with_chats_and_tokens,
        a_disabled_admin_does_not_count_and_two_demotions_at_once_leave_one,
    );

    fn a_disabled_admin_does_not_count_and_two_demotions_at_once_leave_one(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let bob = new_user(db, "bob@example.com");
        let carol = new_user(db, "carol@example.com");
        let change = |role: Option<AccountRole>, disabled: Option<bool>| AccountChange {
            role,
            disabled,
            ..AccountChange::default()
        };
        for admin in [ada.id, carol.id] {
            db.change(admin, &change(Some(AccountRole::Admin), None))
                .unwrap();
        }
        db.change(carol.id, &change(None, Some(true))).unwrap();

        // Carol is an admin, but disabled: Ada is the last enabled one.
        for refused in [
            change(Some(AccountRole::User), None),
            change(Some(AccountRole::Admin), Some(true)),
        ] {
            assert!(matches!(
                db.change(ada.id, &refused),
                Err(AccountChangeError::LastAdmin)
            ));
        }
        // Two admins demoting each other at once, again and again: one wins each time.
        db.change(bob.id, &change(Some(AccountRole::Admin), None))
            .unwrap();
        for _ in 0..20 {
            let barrier = std::sync::Barrier::new(2);
            let demote = |id| {
                barrier.wait();
                db.change(id, &change(Some(AccountRole::User), None))
                    .is_ok()
            };
            let won: Vec<bool> = std::thread::scope(|scope| {
                let one = scope.spawn(|| demote(ada.id));
                let other = scope.spawn(|| demote(bob.id));
                vec![one.join().unwrap(), other.join().unwrap()]
            });
            assert_eq!(won.iter().filter(|&&won| won).count(), 1, "{won:?}");
            for admin in [ada.id, bob.id] {
                db.change(admin, &change(Some(AccountRole::Admin), None))
                    .unwrap();
            }
        }
    }

    /// A question in `chat` and its reply, `generating`.
    fn exchange(chat: &Chat, seconds: i64) -> (Message, Message) {
        let question = message(chat, Role::User, "q", at(seconds));
        let reply = Message {
            content: MessageContent::from_trusted(String::new()),
            status: MessageStatus::Generating,
            ..reply_to(&question, Role::Assistant, "unused", at(seconds + 1))
        };
        (question, reply)
    }

    fn tokens_of(db: &Database, user: UserId, day: UsageDay) -> u64 {
        ReplyRepository::generating(db, None, user, day)
            .unwrap()
            .unwrap()
            .tokens_used
    }

    fn a_finished_reply_stores_its_usage_and_adds_it_to_the_day(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let chat = new_chat(db, ada.id, "talk", at(1));
        let (question, reply) = exchange(&chat, 2);
        db.start(&question, true, &reply, allow(3), DAY).unwrap();

        let stored = db
            .finish(
                &reply,
                "Hi",
                &[2],
                MessageStatus::Complete,
                Some(USAGE),
                DAY,
            )
            .unwrap()
            .unwrap();

        assert_eq!(stored.usage, Some(USAGE));
        assert_eq!(
            db.find_message(chat.id, reply.id).unwrap().unwrap().usage,
            Some(USAGE)
        );
        assert_eq!(
            db.find_message(chat.id, question.id)
                .unwrap()
                .unwrap()
                .usage,
            None
        );
        assert_eq!(tokens_of(db, ada.id, DAY), 10);
        // A title request's tokens add up on the same day; another day starts at zero.
        db.charge(ada.id, 5, DAY).unwrap();
        assert_eq!(tokens_of(db, ada.id, DAY), 15);
        assert_eq!(tokens_of(db, ada.id, UsageDay(DAY.0 + 1)), 0);
        // Finishing again (another instance ended it) counts nothing.
        assert_eq!(
            db.finish(
                &reply,
                "Hi",
                &[2],
                MessageStatus::Complete,
                Some(USAGE),
                DAY
            )
            .unwrap(),
            None
        );
        assert_eq!(tokens_of(db, ada.id, DAY), 15);
        // Deleting the chat gives nothing back; charging a deleted account is nothing.
        assert!(ChatRepository::delete(&**db, chat.id).unwrap());
        assert_eq!(tokens_of(db, ada.id, DAY), 15);
        db.charge(UserId::generate(), 5, DAY).unwrap();
    }

    fn the_daily_quota_refuses_a_start_with_the_users_own_limit_first(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let chat = new_chat(db, ada.id, "talk", at(1));
        db.charge(ada.id, 20, DAY).unwrap();
        let quota = |tokens| Allowance {
            tokens_per_day: Some(tokens),
            generations: 3,
        };
        let (question, reply) = exchange(&chat, 2);

        assert_eq!(
            db.start(&question, true, &reply, quota(20), DAY).unwrap(),
            StartedReply::OverQuota
        );
        assert_eq!(db.raw_count("messages", &chat), 0, "nothing stored");
        // The user's own limit wins over the default, both ways.
        let change = |limit| AccountChange {
            token_limit: Some(limit),
            ..AccountChange::default()
        };
        db.change(ada.id, &change(Some(21))).unwrap().unwrap();
        assert!(matches!(
            db.start(&question, true, &reply, quota(20), DAY).unwrap(),
            StartedReply::Started { .. }
        ));
        db.finish(&reply, "a", &[1], MessageStatus::Complete, Some(USAGE), DAY)
            .unwrap();
        // Her own limit below the default refuses too.
        db.change(ada.id, &change(Some(25))).unwrap();
        let (question, reply) = exchange(&chat, 4);
        assert_eq!(
            db.start(&question, true, &reply, quota(1_000), DAY)
                .unwrap(),
            StartedReply::OverQuota
        );
        db.change(ada.id, &change(Some(1_000))).unwrap();
        let (question, reply) = exchange(&chat, 5);
        let spending = spending(db, chat.id, ada.id);
        assert_eq!(
            (spending.tokens_used, spending.own_token_limit),
            (30, Some(1_000))
        );
        db.change(ada.id, &change(None)).unwrap();
        assert_eq!(
            db.start(&question, true, &reply, quota(30), DAY).unwrap(),
            StartedReply::OverQuota
        );
        assert!(matches!(
            db.start(&question, true, &reply, allow(3), DAY).unwrap(),
            StartedReply::Started { .. }
        ));
    }

    fn disabling_an_account_revokes_its_tokens_and_stops_its_replies(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let chat = new_chat(db, ada.id, "talk", at(1));
        let other = new_chat(db, ada.id, "other", at(1));
        let (question, reply) = exchange(&chat, 2);
        db.start(&question, true, &reply, allow(3), DAY).unwrap();
        let disable = AccountChange {
            disabled: Some(true),
            ..AccountChange::default()
        };

        let changed = db.change(ada.id, &disable).unwrap().unwrap();

        assert!(changed.disabled);
        assert_eq!(changed.token_generation, 1);
        assert!(!db.is_current(Session::new(ada.id, 0)).unwrap());
        assert_eq!(
            db.watch(&[reply.id], false).unwrap(),
            [ReplyState::Generating {
                stop_requested: true
            }]
        );
        // A reply racing the disable does not start.
        let (question, reply) = exchange(&other, 4);
        assert_eq!(
            db.start(&question, true, &reply, allow(3), DAY).unwrap(),
            StartedReply::Disabled
        );
        // Disabling twice revokes once; enabling brings no token back.
        assert_eq!(
            db.change(ada.id, &disable)
                .unwrap()
                .unwrap()
                .token_generation,
            1
        );
        let enable = AccountChange {
            disabled: Some(false),
            ..AccountChange::default()
        };
        let enabled = db.change(ada.id, &enable).unwrap().unwrap();
        assert!(!enabled.disabled);
        assert_eq!(enabled.token_generation, 1);
        assert!(db.change(UserId::generate(), &enable).unwrap().is_none());
    }

    fn the_last_enabled_admin_cannot_be_removed(db: &Store) {
        let ada = new_user(db, "ada@example.com");
        let bob = new_user(db, "bob@example.com");
        let role = |role| AccountChange {
            role: Some(role),
            ..AccountChange::default()
        };
        // With no admin at all, users come and go.
        assert!(UserRepository::delete(&**db, Session::new(bob.id, 0)).unwrap());
        let bob = new_user(db, "bob@example.com");
        db.change(ada.id, &role(AccountRole::Admin)).unwrap();

        let refusals = [
            db.change(ada.id, &role(AccountRole::User)).map(drop),
            db.change(
                ada.id,
                &AccountChange {
                    disabled: Some(true),
                    ..AccountChange::default()
                },
            )
            .map(drop),
            db.delete_by_id(ada.id).map(drop),
            UserRepository::delete(&**db, Session::new(ada.id, 0)).map(drop),
        ];
        for refused in refusals {
            assert!(
                matches!(refused, Err(AccountChangeError::LastAdmin)),
                "{refused:?}"
            );
        }
        assert!(db.find_by_id(ada.id).unwrap().unwrap().is_admin());
        // A user goes as before; with another admin, the first may go.
        db.change(bob.id, &role(AccountRole::Admin)).unwrap();
        assert_eq!(
            db.change(ada.id, &role(AccountRole::User))
                .unwrap()
                .unwrap()
                .role,
            AccountRole::User
        );
        assert!(matches!(
            db.delete_by_id(bob.id),
            Err(AccountChangeError::LastAdmin)
        ));
        assert!(db.delete_by_id(ada.id).unwrap());
        assert!(!db.delete_by_id(ada.id).unwrap());
    }

    fn accounts_are_listed_newest_first_by_email_with_chats_and_tokens(db: &Store) {
        let mut users = Vec::new();
        for (n, email) in ["a_1@example.com", "a%2@example.com", "b3@example.org"]
            .into_iter()
            .enumerate()
        {
            let user = User {
                created_at: at(i64::try_from(n).unwrap()),
                ..User::new(
                    Email::parse(email).unwrap(),
                    PasswordHash::new("x".into()),
                    at(0),
                )
            };
            UserRepository::create(&**db, &user).unwrap();
            users.push(user);
        }
        new_chat(db, users[0].id, "one", at(1));
        new_chat(db, users[0].id, "two", at(2));
        db.charge(users[0].id, 9, DAY).unwrap();
        let emails = |found: Vec<memlayer_ports::AccountSummary>| {
            found
                .into_iter()
                .map(|summary| summary.user.email.as_str().to_owned())
                .collect::<Vec<_>>()
        };

        let all = db.list(None, None, 10, DAY).unwrap();

        assert_eq!(
            emails(all.clone()),
            ["b3@example.org", "a%2@example.com", "a_1@example.com"]
        );
        assert_eq!((all[2].chats, all[2].tokens_used), (2, 9));
        assert_eq!((all[0].chats, all[0].tokens_used), (0, 0));
        assert_eq!(
            emails(
                db.list(
                    Some(&Email::normalise_fragment(" EXAMPLE.COM")),
                    None,
                    10,
                    DAY
                )
                .unwrap()
            )
            .len(),
            2
        );
        assert_eq!(
            emails(db.list(Some("a_"), None, 10, DAY).unwrap()),
            ["a_1@example.com"]
        );
        assert_eq!(
            emails(db.list(Some("a%"), None, 10, DAY).unwrap()),
            ["a%2@example.com"]
        );
        let first = db.list(None, None, 1, DAY).unwrap();
        let after = memlayer_domain::Cursor {
            created_at: first[0].user.created_at,
            id: first[0].user.id.as_uuid(),
        };
        assert_eq!(
            emails(db.list(None, Some(after), 5, DAY).unwrap()),
            ["a%2@example.com", "a_1@example.com"]
        );
        let one = db.summary(users[0].id, DAY).unwrap().unwrap();
        assert_eq!((one.chats, one.tokens_used), (2, 9));
        assert!(db.summary(UserId::generate(), DAY).unwrap().is_none());
    }
}
