//! The OpenAPI document (served at `/openapi.json`, shown by Swagger UI at `/docs/`):
//! what is said of the whole API here, and every path collected from the route table.

use actix_web::App;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use crate::error::wire;
use crate::{dto, routes};

/// The whole document: [`ApiDoc`] and the paths of [`routes::table`].
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, document) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes::table)
        .split_for_parts();
    document
}

/// What the document says of the API as a whole.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "MemLayer API",
        description = "Accounts, chats, messages and folders for MemLayer, the memory layer for AI chat.\n\n\
            Log in with `POST /auth/login` (or register), then send `Authorization: Bearer <access_token>`. \
            Errors are JSON: `{\"detail\": \"...\"}`, or for invalid input (422) a list of \
            `{\"loc\", \"msg\", \"type\"}`."
    ),
    components(schemas(dto::DeltaEvent, wire::ErrorBody, wire::ValidationErrorBody, wire::ValidationIssue, wire::LocItem)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and access tokens"),
        (name = "chats", description = "The user's chats"),
        (name = "messages", description = "The messages of a chat"),
        (name = "folders", description = "The user's folders of chats"),
        (name = "search", description = "Finding the user's messages and chat titles"),
        (name = "admin", description = "Accounts, for admins"),
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
