//! Generations: a reply belongs to the service, not to the connection that asked for it.
//!
//! Starting a reply stores it (`generating`) and spawns one task that owns the model's
//! stream ([`spawn`]); requests only follow it. The task runs on the actix system's own
//! arbiter, not on a worker, so it outlives its request and the HTTP server's shutdown
//! ([`Generations::drain`]). It hands each piece to the listeners on this instance in
//! memory ([`Live`]), appends the pieces to the database in batches
//! ([`FLUSH_EVERY`]), and ends the reply in one statement. Other instances follow it
//! through the database, and ask it to stop there; [`watch`] relays their stop
//! requests (and deletions) to the task, beats this instance's heartbeat and marks the
//! replies of dead instances `failed`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::web::Data;
use futures_util::StreamExt;
use memlayer_app::domain::{Message, MessageId, MessageStatus};
use memlayer_app::ports::{ReplyState, ResponderError};
use memlayer_app::{AppError, StartedGeneration};
use tokio::sync::{Notify, watch};
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

/// Why a generation ended before the model finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Someone called the stop route.
    Stop,
    /// The reply was deleted (with its chat, its branch or its account).
    Gone,
    /// The service is shutting down.
    Shutdown,
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
    ending: Option<Ending>,
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

    /// The pieces after the first `seen`, once there is at least one, and the ending
    /// once there is one.
    pub(crate) async fn after(&self, seen: usize) -> (Vec<String>, Option<Ending>) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            {
                let state = self.lock();
                if state.pieces.len() > seen || state.ending.is_some() {
                    let new = state.pieces.get(seen..).unwrap_or_default().to_vec();
                    return (new, state.ending.clone());
                }
            }
            changed.await;
        }
    }

    /// How the reply ended, once it has.
    pub(crate) async fn ended(&self) -> Ending {
        loop {
            if let (_, Some(ending)) = self.after(usize::MAX).await {
                return ending;
            }
        }
    }
}

/// The replies generating on this instance, and the cap on how many may.
pub struct Generations {
    running: Mutex<HashMap<MessageId, Arc<Live>>>,
    reserved: AtomicUsize,
    max: usize,
    idle: Notify,
}

/// A place among the replies this instance may generate at once; freed when dropped.
pub(crate) struct Reservation(Arc<Generations>);

impl Drop for Reservation {
    fn drop(&mut self) {
        self.0.reserved.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Generations {
    /// At most `max` replies at once.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            running: Mutex::new(HashMap::new()),
            reserved: AtomicUsize::new(0),
            max,
            idle: Notify::new(),
        })
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
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no reply is generating on this instance.
    pub fn is_empty(&self) -> bool {
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

    /// For a shutdown: lets the replies generating here finish within `grace`, then
    /// stops the rest, which are stored `stopped` with their text so far.
    pub async fn drain(&self, grace: Duration) {
        if self.idle_within(grace).await {
            return;
        }
        let left = self.len();
        tracing::warn!(
            replies = left,
            "replies still generating at the end of the shutdown's grace period: stopping them"
        );
        for live in self.lock().values() {
            live.stop(Cause::Shutdown);
        }
        // Storing what they have takes one statement each.
        self.idle_within(Duration::from_secs(10)).await;
    }
}

/// Spawns the generation of `started` (which holds `reservation`'s place until it
/// ends) on the actix system's arbiter, in the current tracing span. Its listeners on
/// this instance follow what it returns.
pub(crate) fn spawn(
    state: &Data<ApiState>,
    started: StartedGeneration,
    reservation: Reservation,
) -> Arc<Live> {
    let (live, stopped) = Live::new();
    state
        .generations
        .lock()
        .insert(started.reply.id, live.clone());
    let task = generate(state.clone(), started, live.clone(), stopped, reservation);
    // A system that no longer runs drops the task, which stores what it has.
    actix_web::rt::System::current()
        .arbiter()
        .spawn(task.in_current_span());
    live
}

/// What the generation has of the reply: how many characters, and what is not in the
/// database yet.
#[derive(Debug, Default)]
struct Written {
    chars: usize,
    visible: bool,
    batch: String,
    ends: Vec<usize>,
}

impl Written {
    fn add(&mut self, piece: &str) {
        self.chars += piece.chars().count();
        self.visible |= !piece.trim().is_empty();
        self.batch.push_str(piece);
        self.ends.push(self.chars);
    }
}

/// How the model's stream ended.
enum Outcome {
    Finished,
    Failed(AppError),
    Cut(Cause),
}

/// A generation the task has not ended yet. Should the task be dropped first (the
/// runtime stops), the reply is stored `stopped` with what it has, there and then.
struct Unended {
    state: Data<ApiState>,
    reply: Message,
    written: Option<Written>,
}

impl Drop for Unended {
    fn drop(&mut self) {
        if let Some(written) = self.written.take()
            && let Err(error) = self.state.app.end_reply(
                &self.reply,
                &written.batch,
                &written.ends,
                MessageStatus::Stopped,
            )
        {
            ApiError::App(error).log();
        }
    }
}

async fn generate(
    state: Data<ApiState>,
    started: StartedGeneration,
    live: Arc<Live>,
    mut stopped: watch::Receiver<Option<Cause>>,
    _reservation: Reservation,
) {
    let reply = started.reply.clone();
    let mut unended = Unended {
        state: state.clone(),
        reply: reply.clone(),
        written: Some(Written::default()),
    };
    let mut answer = state.app.answer(&started.request);
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
                Some(Ok(piece)) => {
                    written.add(&piece);
                    live.push(piece);
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
    let ending = end(&state, reply.clone(), written, outcome).await;
    if let Ending::Failed(error) = &ending {
        error.log();
    }
    live.end(ending);
    state.generations.remove(reply.id);
}

/// Appends the pieces not in the database yet; why to stop, if the database says so.
async fn append(state: &Data<ApiState>, reply: MessageId, written: &mut Written) -> Option<Cause> {
    if written.ends.is_empty() {
        return None;
    }
    let (text, ends) = (written.batch.clone(), written.ends.clone());
    match blocking(state, move |app| app.append_to_reply(reply, &text, &ends)).await {
        Ok(appended) => {
            written.batch.clear();
            written.ends.clear();
            match appended {
                ReplyState::Generating {
                    stop_requested: true,
                } => Some(Cause::Stop),
                ReplyState::Generating { .. } => None,
                ReplyState::Gone => Some(Cause::Gone),
            }
        }
        Err(error) => {
            // Kept for the next batch; the listeners here have every piece already.
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
                AppError::AssistantFailed(ResponderError::Broken(
                    "the model's answer had no text".into(),
                )),
            )
            .await;
        }
        Outcome::Failed(error) if !written.visible => return discard(state, reply, error).await,
        Outcome::Failed(error) => {
            let Written { batch, ends, .. } = written;
            let stored = blocking(state, move |app| {
                app.end_reply(&reply, &batch, &ends, MessageStatus::Failed)
            })
            .await;
            return Ending::Failed(Arc::new(match stored {
                Ok(_) => ApiError::App(error),
                Err(gone) => gone,
            }));
        }
        Outcome::Cut(Cause::Stop | Cause::Shutdown) => MessageStatus::Stopped,
        Outcome::Cut(Cause::Gone) => {
            let gone = blocking(state, move |app| Ok(app.reply_gone(&reply))).await;
            return Ending::Failed(Arc::new(match gone {
                Ok(gone) => ApiError::App(gone),
                Err(error) => error,
            }));
        }
    };
    let Written { batch, ends, .. } = written;
    match blocking(state, move |app| {
        app.end_reply(&reply, &batch, &ends, status)
    })
    .await
    {
        Ok(stored) => Ending::Done(stored),
        Err(error) => Ending::Failed(Arc::new(error)),
    }
}

/// Deletes a reply that failed before it had any text (its question stands alone);
/// the ending is `error`.
async fn discard(state: &Data<ApiState>, reply: Message, error: AppError) -> Ending {
    if let Err(failed) = blocking(state, move |app| app.discard_reply(&reply)).await {
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
