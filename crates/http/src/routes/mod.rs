//! The route table: every route declared once, in [`table`]. Each handler's
//! `#[utoipa::path]` says its method, path and contract; [`routes!`] builds the actix
//! resource from it, and `utoipa-actix-web` collects the OpenAPI document from the same
//! table, so what is served and what is documented cannot drift apart.

pub mod accounts;
pub mod admin;
pub mod chats;
mod export;
pub mod folders;
pub mod health;
pub mod messages;
pub mod search;

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::http::Method;
use actix_web::http::header::HeaderValue;
use actix_web::web;
use actix_web::{FromRequest, Handler, HttpResponse, Responder, guard};
use utoipa::openapi::path::{HttpMethod, Paths};
use utoipa::openapi::{RefOr, schema::Schema};
use utoipa_actix_web::OpenApiFactory;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::ApiError;

/// Every route of the API. Paths inside the `/chats/{chat_id}` scope are relative to it.
pub fn table(cfg: &mut ServiceConfig) {
    cfg.service(routes![accounts::register])
        .service(routes![accounts::login])
        .service(routes![accounts::me, accounts::delete_me])
        .service(routes![accounts::change_password])
        .service(routes![accounts::logout_all])
        .service(routes![accounts::export])
        .service(routes![accounts::usage])
        .service(routes![admin::list, admin::create])
        .service(routes![admin::change, admin::delete])
        .service(routes![chats::list, chats::create])
        // One scope for everything under a chat: the router tests its dynamic prefix
        // once, then plain strings.
        .service(
            utoipa_actix_web::scope("/chats/{chat_id}")
                .service(routes![chats::get, chats::update, chats::delete])
                .service(routes![chats::set_active])
                .service(routes![messages::list, messages::post])
                .service(routes![messages::delete])
                .service(routes![messages::regenerate])
                .service(routes![messages::edit])
                .service(routes![messages::resume])
                .service(routes![messages::stop])
                .service(routes![messages::tree]),
        )
        .service(routes![folders::list, folders::create])
        .service(routes![folders::rename, folders::delete])
        .service(routes![search::search])
        .service(routes![health::live])
        .service(routes![health::ready]);
}

/// The resource serving `handler`s (functions with `#[utoipa::path]`), which share one
/// path; their methods, in the order given, make the `Allow` header of its 405.
macro_rules! routes {
    ($($module:ident :: $handler:ident),+ $(,)?) => {
        pastey::paste! {
            $crate::routes::Resource::default()
                $(.operation($module::[<__path_ $handler>], $module::$handler))+
        }
    };
}
pub(crate) use routes;

/// One path and the operations on it. Served at the path and at the path with a
/// trailing slash (no route depends on one, and none redirects); a GET answers HEAD too
/// (RFC 9110: actix sends the same head without the body); any other method is a JSON
/// 405 with `Allow`. Documented by its operations' `#[utoipa::path]`.
#[derive(Default)]
pub struct Resource {
    path: String,
    /// Each makes one route; called once for the path and once for its slashed twin.
    routes: Vec<Box<dyn Fn() -> actix_web::Route>>,
    allow: Vec<&'static str>,
    paths: Paths,
    schemas: Vec<(String, RefOr<Schema>)>,
}

impl Resource {
    /// Adds `handler`, served and documented as `doc` (its `#[utoipa::path]`) says.
    pub fn operation<D, H, Args>(mut self, doc: D, handler: H) -> Self
    where
        D: utoipa::Path + OpenApiFactory,
        H: Handler<Args>,
        Args: FromRequest + 'static,
        H::Output: Responder + 'static,
    {
        let path = D::path();
        debug_assert!(
            self.routes.is_empty() || self.path == path,
            "one resource, one path: {path} is not {}",
            self.path
        );
        self.path = path;
        for method in D::methods() {
            let (method, name) = actix_method(&method);
            let handler = handler.clone();
            if method == Method::GET {
                self.routes.push(Box::new(move || {
                    web::route()
                        .guard(guard::Any(guard::Get()).or(guard::Head()))
                        .to(handler.clone())
                }));
                self.allow.extend(["GET", "HEAD"]);
            } else {
                self.routes.push(Box::new(move || {
                    web::route().method(method.clone()).to(handler.clone())
                }));
                self.allow.push(name);
            }
        }
        self.paths.merge(doc.paths());
        doc.schemas(&mut self.schemas);
        self
    }
}

fn actix_method(method: &HttpMethod) -> (Method, &'static str) {
    match method {
        HttpMethod::Get => (Method::GET, "GET"),
        HttpMethod::Post => (Method::POST, "POST"),
        HttpMethod::Put => (Method::PUT, "PUT"),
        HttpMethod::Delete => (Method::DELETE, "DELETE"),
        HttpMethod::Options => (Method::OPTIONS, "OPTIONS"),
        HttpMethod::Head => (Method::HEAD, "HEAD"),
        HttpMethod::Patch => (Method::PATCH, "PATCH"),
        HttpMethod::Trace => (Method::TRACE, "TRACE"),
    }
}

impl HttpServiceFactory for Resource {
    fn register(self, config: &mut AppService) {
        let allow = HeaderValue::from_str(&self.allow.join(", "))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        // Two resources, not one with two patterns: actix matches a resource of several
        // patterns with a regular-expression set, one of a single static pattern with a
        // string comparison (a regex set per resource tried was about 5 % of a request's
        // CPU).
        let slashed = format!("{}/", self.path);
        for path in [self.path.as_str(), slashed.as_str()] {
            let allow = allow.clone();
            let resource = self
                .routes
                .iter()
                .fold(web::resource(path), |resource, route| {
                    resource.route(route())
                })
                .default_service(web::to(move || {
                    let allow = allow.clone();
                    async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed(allow)) }
                }));
            resource.register(config);
        }
    }
}

impl OpenApiFactory for Resource {
    fn paths(&self) -> Paths {
        self.paths.clone()
    }

    fn schemas(&self, schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.extend(self.schemas.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use actix_web::App;
    use actix_web::http::header;
    use actix_web::test::{TestRequest, call_service, init_service};
    use utoipa_actix_web::AppExt;

    use super::*;

    #[actix_web::test]
    async fn every_documented_path_is_served_with_exactly_its_documented_methods() {
        let (app, document) = App::new()
            .into_utoipa_app()
            .configure(table)
            .split_for_parts();
        let app = init_service(app).await;
        assert_eq!(document.paths.paths.len(), 24);
        for (path, item) in &document.paths.paths {
            let documented: Vec<&str> = [
                ("GET", item.get.is_some()),
                ("HEAD", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ]
            .into_iter()
            .filter_map(|(method, present)| present.then_some(method))
            .collect();
            let concrete = path
                .replace("{chat_id}", "0194f4c2-0000-7000-8000-000000000000")
                .replace("{message_id}", "0194f4c2-0000-7000-8000-000000000001")
                .replace("{folder_id}", "0194f4c2-0000-7000-8000-000000000001")
                .replace("{user_id}", "0194f4c2-0000-7000-8000-000000000002");
            for uri in [concrete.clone(), format!("{concrete}/")] {
                let response = call_service(
                    &app,
                    TestRequest::default()
                        .method(Method::TRACE)
                        .uri(&uri)
                        .to_request(),
                )
                .await;
                assert_eq!(response.status().as_u16(), 405, "{uri}");
                let allow = response.headers().get(header::ALLOW).unwrap();
                let mut allowed: Vec<&str> = allow.to_str().unwrap().split(", ").collect();
                allowed.sort_unstable();
                let mut expected = documented.clone();
                expected.sort_unstable();
                assert_eq!(allowed, expected, "{uri}");
            }
        }
    }
}
