//! The one way off the actix workers: running a use case on the blocking pool.

use actix_web::web::{self, Data};
use memlayer_app::{AppError, MemLayer};

use crate::error::ApiError;
use crate::state::ApiState;

/// Runs a use case on the blocking pool: Diesel and bcrypt block, so a use case never
/// runs on an actix worker. Most requests make one hop and run their whole use case in
/// it (a JSON post with the fixed reply too); a post to a model, or a streamed post,
/// makes three (`ask`, `store_question`, `finish_reply`), so that no thread is held
/// while the model writes.
pub(crate) async fn blocking<T, F>(state: &Data<ApiState>, use_case: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&MemLayer) -> Result<T, AppError> + Send + 'static,
{
    let state = state.clone();
    Ok(web::block(move || use_case(&state.app)).await??)
}
