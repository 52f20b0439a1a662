//! Generations: a reply belongs to the service, not to the connection that asked for it.
//!
//! Starting a reply stores it (`generating`) and spawns one task that owns the model's
//! stream ([`start`]); requests only follow it. The task runs on the actix system's own
//! arbiter, not on a worker, so it outlives its request and the HTTP server's shutdown
//! ([`Generations::drain`]). It hands each piece to the listeners on this instance in
//! memory ([`Live`]), appends the pieces to the database in batches
//! ([`FLUSH_EVERY`]), and ends the reply in one statement. Other instances follow it
//! through the database, and ask it to stop there; [`watch`] relays their stop
//! requests (and deletions) to the task, beats this instance's heartbeat and marks the
//! replies of dead instances `failed`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::web::Data;
use futures_util::{StreamExt, TryStreamExt, stream};
use memlayer_app::domain::{
    Chat, Message, MessageContent, MessageId, MessageStatus, Session, TokenUsage,
};
use memlayer_app::ports::{ReplyPiece, ReplyRequest, ReplyState, ResponderError};
use memlayer_app::{AnswerStream, AppError, PendingReply, StartedGeneration};
use tokio::sync::{Notify, Semaphore, oneshot, watch};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{Instant, MissedTickBehavior, interval, interval_at};
use tracing::Instrument as _;

use crate::blocking::blocking;
use crate::error::ApiError;
use crate::state::ApiState;

/// How often a generating reply's new pieces are appended to the database (at most).
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// How often this instance asks the database whether its replies were asked to stop
/// (from another instance) or deleted.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// The longest a title request may take.
const TITLE_WAIT: Duration = Duration::from_secs(30);

/// How often this instance asks the database whether the sessions of the streams open
/// here are still current (one query for all of them).
const SESSIONS_EVERY: Duration = Duration::from_secs(1);

/// Why a generation ended before the model finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Someone called the stop route.
    Stop,
    /// The reply was deleted (with its chat, its branch or its account).
    Gone,
    /// The service is shutting down.
    Shutdown,
    /// Another instance ended the reply (it took this one for dead).
    Ended,
    /// The reply reached the longest a reply may be.
    Limit,
}

/// How a reply ended, for everyone following it.
#[derive(Debug, Clone)]
pub(crate) enum Ending {
    /// Stored: `complete` or `stopped`.
    Done(Message),
    /// Failed (the model failed, or the reply was deleted): the error a client reads.
    Failed(Arc<ApiError>),
}

/// A reply generating on this instance, as its listeners here follow it: every piece
/// so far (a listener that joins late reads them all), then how it ended.
pub(crate) struct Live {
    state: Mutex<LiveState>,
    changed: Notify,
    stop: watch::Sender<Option<Cause>>,
}

#[derive(Default)]
struct LiveState {
    pieces: Vec<String>,
    title: Option<Chat>,
    ending: Option<Ending>,
}

/// What a listener has not seen yet of a reply generating here.
pub(crate) struct Update {
    /// The pieces after those it has seen.
    pub(crate) pieces: Vec<String>,
    /// The chat newly named by the model, if the listener has not seen it.
    pub(crate) title: Option<Chat>,
    /// How the reply ended, once it has.
    pub(crate) ending: Option<Ending>,
}

impl Live {
    fn new() -> (Arc<Self>, watch::Receiver<Option<Cause>>) {
        let (stop, stopped) = watch::channel(None);
        let live = Arc::new(Self {
            state: Mutex::new(LiveState::default()),
            changed: Notify::new(),
            stop,
        });
        (live, stopped)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, piece: String) {
        self.lock().pieces.push(piece);
        self.changed.notify_waiters();
    }

    fn name(&self, chat: Chat) {
        self.lock().title = Some(chat);
        self.changed.notify_waiters();
    }

    fn end(&self, ending: Ending) {
        self.lock().ending = Some(ending);
        self.changed.notify_waiters();
    }

    /// Ends the generation early, for `cause` (the first cause given wins).
    pub(crate) fn stop(&self, cause: Cause) {
        self.stop.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(cause);
            }
            first
        });
    }

    /// What a listener that has seen the first `seen` pieces (and the title, if
    /// `title_seen`) has not seen yet, once there is something.
    pub(crate) async fn after(&self, seen: usize, title_seen: bool) -> Update {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            {
                let state = self.lock();
                let title = state.title.clone().filter(|_| !title_seen);
                if state.pieces.len() > seen || state.ending.is_some() || title.is_some() {
                    return Update {
                        pieces: state.pieces.get(seen..).unwrap_or_default().to_vec(),
                        title,
                        ending: state.ending.clone(),
                    };
                }
            }
            changed.await;
        }
    }

    /// How the reply ended, once it has.
    pub(crate) async fn ended(&self) -> Ending {
        loop {
            if let Some(ending) = self.after(usize::MAX, true).await.ending {
                return ending;
            }
        }
    }
}

/// The replies generating on this instance, the cap on how many may, and the streams
/// open here (each ends when its session is revoked).
pub struct Generations {
    running: Mutex<HashMap<MessageId, Arc<Live>>>,
    reserved: AtomicUsize,
    max: usize,
    idle: Notify,
    streams: Mutex<Vec<(Session, Weak<Notify>)>>,
    /// Turns at the database for the generations' writes: no more at once than the
    /// pool has connections, so a thousand replies flushing do not take a thousand
    /// blocking threads (and their memory) to queue for a handful of connections.
    writes: Semaphore,
}

/// A stream's registration: notified when its session is no longer current.
pub(crate) type Revoked = Arc<Notify>;

/// A place among the replies this instance may generate at once; freed when dropped.
pub(crate) struct Reservation(Arc<Generations>);

impl Drop for Reservation {
    fn drop(&mut self) {
        self.0.reserved.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Generations {
    /// At most `max` replies at once, writing through at most `connections` less two
    /// database connections at once (at least one).
    pub fn new(max: usize, connections: usize) -> Arc<Self> {
        Arc::new(Self {
            running: Mutex::new(HashMap::new()),
            reserved: AtomicUsize::new(0),
            max,
            idle: Notify::new(),
            streams: Mutex::new(Vec::new()),
            // Two connections left to the requests and the watch.
            writes: Semaphore::new(connections.saturating_sub(2).max(1)),
        })
    }

    /// Runs a generation's use case on the blocking pool, in turn with the others'.
    async fn write<T, F>(state: &Data<ApiState>, use_case: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&memlayer_app::MemLayer) -> Result<T, AppError> + Send + 'static,
    {
        let _turn = state.generations.writes.acquire().await;
        blocking(state, use_case).await
    }

    /// Registers a stream of `session`'s: it is told when the session ends.
    pub(crate) fn follow(&self, session: Session) -> Revoked {
        let revoked = Arc::new(Notify::new());
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((session, Arc::downgrade(&revoked)));
        revoked
    }

    /// The sessions of the streams still open (forgetting the closed ones).
    fn open_sessions(&self) -> Vec<Session> {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        streams.retain(|(_, stream)| stream.strong_count() > 0);
        let mut sessions: Vec<Session> = streams.iter().map(|(session, _)| *session).collect();
        sessions.sort_by_key(|session| (session.user.as_uuid(), session.generation));
        sessions.dedup();
        sessions
    }

    /// Ends the streams of these sessions.
    fn revoke(&self, stale: &[Session]) {
        let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        for (session, stream) in streams.iter() {
            if stale.contains(session)
                && let Some(stream) = stream.upgrade()
            {
                stream.notify_one();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MessageId, Arc<Live>>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for one more reply, or `None` when `max` are generating already.
    pub(crate) fn reserve(self: &Arc<Self>) -> Option<Reservation> {
        self.reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |reserved| {
                (reserved < self.max).then_some(reserved + 1)
            })
            .ok()
            .map(|_| Reservation(self.clone()))
    }

    /// Whether fewer than the most replies are generating here.
    fn has_room(&self) -> bool {
        self.reserved.load(Ordering::Acquire) < self.max
    }

    /// The reply `id`, if it is generating on this instance.
    pub(crate) fn get(&self, id: MessageId) -> Option<Arc<Live>> {
        self.lock().get(&id).cloned()
    }

    fn remove(&self, id: MessageId) {
        let mut running = self.lock();
        running.remove(&id);
        if running.is_empty() {
            self.idle.notify_waiters();
        }
    }

    fn ids(&self) -> Vec<MessageId> {
        self.lock().keys().copied().collect()
    }

    /// How many replies are generating on this instance.
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no reply is generating on this instance.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until no reply generates here, at most `within`.
    async fn idle_within(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let idle = self.idle.notified();
            let mut idle = std::pin::pin!(idle);
            idle.as_mut().enable();
            if self.is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.is_empty();
            }
        }
    }

    /// For a shutdown (from its signal): lets the replies generating here finish
    /// within `grace`, then stops the rest, which are stored `stopped` with their text
    /// so far, and their streams end with `done`.
    pub async fn drain(&self, grace: Duration) {
        if self.idle_within(grace).await {
            return;
        }
        tracing::warn!(
            replies = self.len(),
            "replies still generating at the end of the shutdown's grace period: stopping them"
        );
        for live in self.lock().values() {
            live.stop(Cause::Shutdown);
        }
        self.settled().await;
    }

    /// Waits (at most 10 s: one statement each) until the replies stopped here are
    /// stored.
    pub async fn settled(&self) {
        self.idle_within(Duration::from_secs(10)).await;
    }
}

/// A reply started for a request: what its listeners follow.
pub(crate) type Started = (StartedGeneration, Arc<Live>);

/// Starts the reply to `pending`, holding `reservation`'s place until it ends: stores it
/// (`start_reply`), then runs its generation, both in one task on the actix system's
/// arbiter, in the current tracing span. The task does not depend on the request: once
/// the reply is stored it is generated, even if the request that asked for it is gone
/// by then (its connection reset).
pub(crate) async fn start(
    state: &Data<ApiState>,
    pending: PendingReply,
    reservation: Reservation,
) -> Result<Started, ApiError> {
    let (answer, answered) = oneshot::channel();
    let task = {
        let state = state.clone();
        async move {
            // The model reads the question while the database stores it.
            let early = EarlyAnswer::start(&state.app, pending.request());
            let started = Generations::write(&state, move |app| app.start_reply(pending)).await;
            match started {
                Ok(started) => {
                    let live = run(&state, started.clone(), early, reservation);
                    let _ = answer.send(Ok((started, live)));
                }
                // Dropping `early` cancels the model's request.
                Err(error) => {
                    let _ = answer.send(Err(error));
                }
            }
        }
    };
    actix_web::rt::System::current()
        .arbiter()
        .spawn(task.in_current_span());
    answered
        .await
        .unwrap_or_else(|closed| Err(ApiError::App(AppError::Internal(closed.into()))))
}

/// Runs the generation of `started`, and the naming of its chat if it is due, as tasks
/// of the current arbiter. Its listeners on this instance follow what it returns.
fn run(
    state: &Data<ApiState>,
    started: StartedGeneration,
    answer: EarlyAnswer,
    reservation: Reservation,
) -> Arc<Live> {
    let (live, stopped) = Live::new();
    let id = started.reply.id;
    state.generations.lock().insert(id, live.clone());
    // A title is a request to the model of its own: not when this instance runs as
    // many as it may.
    if state.app.wants_title(&started) && state.generations.has_room() {
        let chat = started.request.chat.clone();
        let question = started.question.content.clone();
        actix_web::rt::spawn(name(state.clone(), chat, question, live.clone()).in_current_span());
    }
    // Made before the task runs: should the task never run, or die, the guard still
    // stores the reply and ends its streams.
    let unended = Unended {
        state: state.clone(),
        reply: started.reply.clone(),
        live: live.clone(),
        written: Some(Written {
            prompt_chars: started.request.chars(),
            ..Written::default()
        }),
        _reservation: reservation,
    };
    actix_web::rt::spawn(generate(unended, answer.into_stream(), stopped).in_current_span());
    live
}

/// The assistant's answer, asked for at once: the model reads the question while the
/// database stores it. Dropping it cancels the request to the model.
struct EarlyAnswer(JoinHandle<(AnswerStream, Option<Result<ReplyPiece, AppError>>)>);

impl EarlyAnswer {
    /// Asks for the answer to `request`, now, on the current arbiter.
    fn start(app: &memlayer_app::MemLayer, request: &ReplyRequest) -> Self {
        let mut answer = app.answer(request);
        Self(actix_web::rt::spawn(
            async move {
                let first = answer.next().await;
                (answer, first)
            }
            .in_current_span(),
        ))
    }

    /// The whole answer: its first piece, then the rest.
    fn into_stream(self) -> AnswerStream {
        stream::once(self)
            .flat_map(|joined| match joined {
                Ok((rest, first)) => stream::iter(first).chain(rest).boxed(),
                Err(error) => stream::iter([Err(AppError::Internal(error.into()))]).boxed(),
            })
            .boxed()
    }
}

impl Future for EarlyAnswer {
    type Output = Result<(AnswerStream, Option<Result<ReplyPiece, AppError>>), JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl Drop for EarlyAnswer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Has the model name `chat` from its first `question`, in parallel with the reply, and
/// tells the reply's listeners here (a `title` event on the streams still open).
async fn name(state: Data<ApiState>, chat: Chat, question: MessageContent, live: Arc<Live>) {
    let asked =
        state
            .app
            .title(&question)
            .try_fold((String::new(), None), |(mut text, usage), piece| {
                let usage = match piece {
                    ReplyPiece::Text(piece) => {
                        text.push_str(&piece);
                        usage
                    }
                    ReplyPiece::Usage(reported) => Some(reported),
                };
                std::future::ready(Ok((text, usage)))
            });
    // A title is a few words: a model still writing one after this is given up on.
    let text = match tokio::time::timeout(TITLE_WAIT, asked).await {
        Ok(text) => text,
        Err(_) => {
            tracing::warn!("the model took too long to name the chat");
            return;
        }
    };
    let named = match text {
        Ok((text, usage)) => {
            blocking(&state, move |app| {
                app.name_chat(&chat, &question, &text, usage)
            })
            .await
        }
        Err(error) => Err(ApiError::App(error)),
    };
    match named {
        Ok(Some(chat)) => live.name(chat),
        Ok(None) => {}
        // The chat keeps its title; the reply is not concerned.
        Err(error) => tracing::warn!(%error, "the model could not name the chat"),
    }
}

/// What the generation has of the reply: all of it (to end it with), and the pieces
/// not in the database yet.
#[derive(Debug, Default)]
struct Written {
    text: String,
    /// Where each piece ends, in characters.
    ends: Vec<usize>,
    visible: bool,
    /// The last pieces, not stored yet (the rest are).
    batch: Vec<String>,
    /// The characters of the conversation the model was sent, and the usage the model
    /// server reported, if it did.
    prompt_chars: usize,
    reported: Option<TokenUsage>,
}

impl Written {
    fn add(&mut self, piece: &str) {
        let chars = self.chars() + piece.chars().count();
        self.visible |= !piece.trim().is_empty();
        self.text.push_str(piece);
        self.ends.push(chars);
        self.batch.push(piece.to_owned());
    }

    /// The characters written.
    fn chars(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    /// How many pieces, and characters, are stored.
    fn stored(&self) -> (usize, usize) {
        let pieces = self.ends.len() - self.batch.len();
        let chars = pieces.checked_sub(1).map_or(0, |last| self.ends[last]);
        (pieces, chars)
    }

    /// The tokens the reply took: as reported, else estimated.
    fn usage(&self) -> TokenUsage {
        TokenUsage::or_estimate(self.reported, self.prompt_chars, self.chars())
    }
}

/// How the model's stream ended.
enum Outcome {
    Finished,
    Failed(AppError),
    Cut(Cause),
}

/// A generation not ended yet. Should its task be dropped first (it never ran, it
/// panicked, or the runtime stopped), the reply is stored `stopped` with what it has,
/// there and then, its streams end, and its place is freed.
struct Unended {
    state: Data<ApiState>,
    reply: Message,
    live: Arc<Live>,
    written: Option<Written>,
    _reservation: Reservation,
}

impl Unended {
    /// Tells the listeners how the reply ended, and forgets it.
    fn settle(&self, ending: Ending) {
        if let Ending::Failed(error) = &ending {
            error.log();
        }
        self.live.end(ending);
        self.state.generations.remove(self.reply.id);
    }
}

impl Drop for Unended {
    fn drop(&mut self) {
        if let Some(written) = self.written.take() {
            let stored = self.state.app.end_reply(
                &self.reply,
                &written.text,
                &written.ends,
                MessageStatus::Stopped,
                written.usage(),
            );
            self.settle(match stored {
                Ok(reply) => Ending::Done(reply),
                Err(error) => Ending::Failed(Arc::new(ApiError::App(error))),
            });
        }
    }
}

async fn generate(
    mut unended: Unended,
    mut answer: AnswerStream,
    mut stopped: watch::Receiver<Option<Cause>>,
) {
    let state = unended.state.clone();
    let reply = unended.reply.clone();
    let live = unended.live.clone();
    let mut flush = interval_at(Instant::now() + FLUSH_EVERY, FLUSH_EVERY);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let outcome = loop {
        let Some(written) = unended.written.as_mut() else {
            return;
        };
        tokio::select! {
            changed = stopped.changed() => {
                let cause = changed.ok().and_then(|()| *stopped.borrow());
                break Outcome::Cut(cause.unwrap_or(Cause::Shutdown));
            }
            piece = answer.next() => match piece {
                Some(Ok(ReplyPiece::Text(piece))) => {
                    written.add(&piece);
                    live.push(piece);
                }
                Some(Ok(ReplyPiece::Usage(usage))) => written.reported = Some(usage),
                // Cut at the longest a reply may be: stored `stopped`.
                Some(Err(AppError::AssistantFailed(ResponderError::LimitReached))) => {
                    break Outcome::Cut(Cause::Limit);
                }
                Some(Err(error)) => break Outcome::Failed(error),
                None => break Outcome::Finished,
            },
            _ = flush.tick() => {
                if let Some(cause) = append(&state, reply.id, written).await {
                    break Outcome::Cut(cause);
                }
            }
        }
    };
    // Closes the connection to the model.
    drop(answer);
    let Some(written) = unended.written.take() else {
        return;
    };
    let ending = end(&state, reply, written, outcome).await;
    unended.settle(ending);
}

/// Appends the pieces not in the database yet; why to stop, if the database says so.
async fn append(state: &Data<ApiState>, reply: MessageId, written: &mut Written) -> Option<Cause> {
    if written.batch.is_empty() {
        return None;
    }
    // The batch does not change meanwhile: no piece is read while it is stored.
    let batch = written.batch.clone();
    let (stored_pieces, stored_chars) = written.stored();
    let appended = Generations::write(state, move |app| {
        app.append_to_reply(reply, stored_pieces, stored_chars, &batch)
    })
    .await;
    match appended {
        Ok(ReplyState::Generating { stop_requested }) => {
            // The batch has been stored.
            written.batch.clear();
            stop_requested.then_some(Cause::Stop)
        }
        Ok(ReplyState::Ended) => Some(Cause::Ended),
        Ok(ReplyState::Gone) => Some(Cause::Gone),
        Err(error) => {
            // Tried again with the next batch (the store skips what it kept of this
            // one); the listeners here have every piece already.
            error.log();
            None
        }
    }
}

/// Stores how the reply ended, as the contract's table says.
async fn end(state: &Data<ApiState>, reply: Message, written: Written, outcome: Outcome) -> Ending {
    let status = match outcome {
        Outcome::Finished if written.visible => MessageStatus::Complete,
        Outcome::Finished => {
            return discard(
                state,
                reply,
                written.reported,
                AppError::AssistantFailed(ResponderError::Broken(
                    "the model's answer had no text".into(),
                )),
            )
            .await;
        }
        Outcome::Failed(error) if !written.visible => {
            return discard(state, reply, written.reported, error).await;
        }
        Outcome::Failed(error) => {
            let usage = written.usage();
            let Written { text, ends, .. } = written;
            let stored = Generations::write(state, move |app| {
                app.end_reply(&reply, &text, &ends, MessageStatus::Failed, usage)
            })
            .await;
            return Ending::Failed(Arc::new(match stored {
                Ok(_) => ApiError::App(error),
                Err(gone) => gone,
            }));
        }
        Outcome::Cut(Cause::Stop | Cause::Shutdown | Cause::Limit) => MessageStatus::Stopped,
        Outcome::Cut(Cause::Gone | Cause::Ended) => {
            // What the model did counts, though the reply is gone.
            let usage = written.usage();
            let gone = Generations::write(state, move |app| {
                app.charge_lost_reply(&reply, Some(usage));
                Ok(app.reply_gone(&reply))
            })
            .await;
            return Ending::Failed(Arc::new(match gone {
                Ok(gone) => ApiError::App(gone),
                Err(error) => error,
            }));
        }
    };
    let usage = written.usage();
    let Written { text, ends, .. } = written;
    match Generations::write(state, move |app| {
        app.end_reply(&reply, &text, &ends, status, usage)
    })
    .await
    {
        Ok(stored) => Ending::Done(stored),
        Err(error) => Ending::Failed(Arc::new(error)),
    }
}

/// Deletes a reply that failed before it had any text (its question stands alone),
/// counting the usage the model reported, if it did; the ending is `error`.
async fn discard(
    state: &Data<ApiState>,
    reply: Message,
    reported: Option<TokenUsage>,
    error: AppError,
) -> Ending {
    let discarded = Generations::write(state, move |app| {
        app.discard_reply(&reply)?;
        app.charge_lost_reply(&reply, reported);
        Ok(())
    })
    .await;
    if let Err(failed) = discarded {
        failed.log();
    }
    Ending::Failed(Arc::new(ApiError::App(error)))
}

/// How often the background work of [`watch`] runs, from how long a silent instance is
/// given before its replies are marked failed.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    /// How long an instance may be silent before its replies are marked `failed`.
    pub silence: Duration,
}

/// This instance's side of replies shared through the database, for as long as the
/// system runs: relays stop requests and deletions to the replies generating here,
/// beats their heartbeat (every sixth of `silence`), and marks the replies of
/// instances silent for `silence` `failed` (every third of it, on any instance).
pub async fn watch(state: Data<ApiState>, settings: Watch) {
    let beat_every = settings.silence / 6;
    let reap_every = settings.silence / 3;
    let mut ticks = interval(WATCH_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut last_beat, mut last_reap) = (Instant::now(), Instant::now());
    let mut last_sessions = Instant::now();
    loop {
        ticks.tick().await;
        let ids = state.generations.ids();
        let beat = last_beat.elapsed() >= beat_every;
        if !ids.is_empty() {
            let asked = ids.clone();
            match blocking(&state, move |app| app.watch_replies(&asked, beat)).await {
                Ok(states) => {
                    if beat {
                        last_beat = Instant::now();
                    }
                    for (id, reply) in ids.into_iter().zip(states) {
                        let cause = match reply {
                            ReplyState::Generating {
                                stop_requested: true,
                            } => Cause::Stop,
                            ReplyState::Generating { .. } => continue,
                            ReplyState::Ended => Cause::Ended,
                            ReplyState::Gone => Cause::Gone,
                        };
                        if let Some(live) = state.generations.get(id) {
                            live.stop(cause);
                        }
                    }
                }
                Err(error) => error.log(),
            }
        }
        if last_sessions.elapsed() >= SESSIONS_EVERY {
            last_sessions = Instant::now();
            let sessions = state.generations.open_sessions();
            if !sessions.is_empty() {
                match blocking(&state, move |app| app.stale_sessions(&sessions)).await {
                    Ok(stale) => state.generations.revoke(&stale),
                    Err(error) => error.log(),
                }
            }
        }
        if last_reap.elapsed() >= reap_every {
            last_reap = Instant::now();
            let silence = settings.silence;
            match blocking(&state, move |app| app.reap_replies(silence)).await {
                Ok(0) => {}
                Ok(reaped) => tracing::warn!(
                    reaped,
                    "replies of an instance that stopped answering were marked failed"
                ),
                Err(error) => error.log(),
            }
        }
    }
}
