//! The OpenAPI document (served at `/openapi.json`) and Swagger UI (at `/docs`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{accounts, chats, health, messages};
use crate::{dto, wire};

/// MemLayer's HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "MemLayer API",
        description = "Accounts, chats and messages for MemLayer, the memory layer for AI chat.\n\n\
            Log in with `POST /auth/login` (or register), then send `Authorization: Bearer <access_token>`. \
            Errors are JSON: `{\"detail\": \"...\"}`, or for invalid input (422) a list of \
            `{\"loc\", \"msg\", \"type\"}`."
    ),
    paths(
        accounts::register,
        accounts::login,
        accounts::me,
        accounts::change_password,
        accounts::logout_all,
        accounts::delete_me,
        accounts::export,
        chats::create,
        chats::list,
        chats::get,
        chats::rename,
        chats::delete,
        messages::post,
        messages::list,
        health::live,
        health::ready,
    ),
    components(schemas(dto::DeltaEvent, wire::ErrorBody, wire::ValidationErrorBody, wire::ValidationIssue, wire::LocItem)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and access tokens"),
        (name = "chats", description = "The user's chats"),
        (name = "messages", description = "The messages of a chat"),
        (name = "health", description = "Probes for load balancers and orchestrators"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme (a JWT), so Swagger UI's Authorize button works.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // Insert into the existing components: replacing them would drop the schemas.
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The access_token from /auth/login or /auth/register"))
                    .build(),
            ),
        );
    }
}
