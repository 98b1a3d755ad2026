//! The MCP face (Model Context Protocol, with the official Rust SDK): the BoxLang seed's health
//! tools by their names, and the reports as resources (`health://system`,
//! `health://{subsystem}`) whose changes reach subscribers: by `resources/subscribe` for
//! clients of the 2025 protocol versions, by `subscriptions/listen` for 2026-07-28 ones.
//! Read-only: no tool pushes, forgets or changes anything.
//!
//! The same handler serves streamable HTTP at `/mcp` over this process's engine, and stdio in
//! `healthscore mcp`, which bridges to a running server over gRPC: both read through
//! [`Reports`].

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
};

use rmcp::{
    handler::server::common::schema_for_type,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, InitializeResult,
        ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
        ReadResourceResponse, ReadResourceResult, Resource, ResourceContents,
        ResourceUpdatedNotificationParam, ServerCapabilities, SubscribeRequestParams,
        SubscriptionFilter, Tool, UnsubscribeRequestParams,
    },
    service::{RequestContext, SubscriptionContext},
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ErrorData as McpError, RoleServer, ServerHandler,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio_stream::{Stream, StreamExt};

use super::arguments::{from_json, HistoryArgs, ReportArgs};
use crate::{
    core::{published::View, scoring::Subsystem, subsystem::for_each_subsystem},
    history,
};

/// `[mcp]`: the streamable HTTP transport at `/mcp` on the HTTP listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    pub enabled: bool,
    /// `Host` header values accepted (names, or `name:port`): anything else is refused, against
    /// DNS rebinding. Add the names the service is reached by.
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin`s accepted (`https://app.example.com:443`, `http://localhost:*`); empty
    /// accepts requests without one and refuses every browser origin.
    pub allowed_origins: Vec<String>,
    /// Sessions open at once; a client that starts one more is refused with 429 until one
    /// ends (a client's DELETE, or five idle minutes).
    pub max_sessions: usize,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
            max_sessions: 100,
        }
    }
}

/// The streamable HTTP service for `/mcp` over `engine`, one session per client; sessions end
/// when `stop` is cancelled.
pub fn http_service(
    engine: crate::engine::Engine,
    config: &McpConfig,
    stop: tokio_util::sync::CancellationToken,
) -> McpHttp {
    let settings = StreamableHttpServerConfig::default()
        .with_allowed_hosts(config.allowed_hosts.clone())
        .with_allowed_origins(config.allowed_origins.clone())
        .enforce_origin_validation()
        .with_cancellation_token(stop);
    let reports = local::Local(engine);
    let sessions = Arc::new(LocalSessionManager::default());
    McpHttp {
        service: StreamableHttpService::new(
            move || Ok(HealthTools::new(reports.clone())),
            sessions.clone(),
            settings,
        ),
        sessions,
        max_sessions: config.max_sessions,
    }
}

/// `/mcp`: rmcp's streamable HTTP service, and a cap on its sessions (each holds a task and its
/// subscriptions until it ends).
#[derive(Clone)]
pub struct McpHttp {
    service: StreamableHttpService<HealthTools<local::Local>, LocalSessionManager>,
    sessions: Arc<LocalSessionManager>,
    max_sessions: usize,
}

impl McpHttp {
    /// Whether every session slot is taken.
    async fn full(&self) -> bool {
        self.sessions.sessions.read().await.len() >= self.max_sessions
    }
}

impl tower::Service<http::Request<axum::body::Body>> for McpHttp {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<
        Box<dyn Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<axum::body::Body>) -> Self::Future {
        use axum::response::IntoResponse;
        let mut this = self.clone();
        // A POST without a session id starts a session.
        let starts = request.method() == http::Method::POST
            && !request.headers().contains_key("mcp-session-id");
        Box::pin(async move {
            if starts && this.full().await {
                let body = json!({
                    "error": "too many MCP sessions are open (mcp.max_sessions); retry later"
                });
                return Ok((
                    http::StatusCode::TOO_MANY_REQUESTS,
                    [(http::header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
                    .into_response());
            }
            let response = this.service.call(request).await?;
            Ok(response.map(axum::body::Body::new))
        })
    }
}

/// A stream of ticks, one per change of the followed reports.
pub type Changes = Pin<Box<dyn Stream<Item = ()> + Send>>;

/// Where the tools read: this process's engine, or a server over gRPC.
pub trait Reports: Clone + Send + Sync + 'static {
    /// The report JSON of `subsystem` (the system's when `None`), cut to `view`.
    fn read(
        &self,
        subsystem: Option<Subsystem>,
        view: View,
    ) -> impl Future<Output = Result<Value, String>> + Send;

    /// The history `query` asks for, as `/v1/history`'s JSON.
    fn history(&self, query: history::Query) -> impl Future<Output = Result<Value, String>> + Send;

    /// Ticks when the report of `subsystem` (any report, for the system's) changes its status,
    /// score or issues; the current state is not a change. Ends when the reports do.
    fn changes(&self, subsystem: Option<Subsystem>) -> impl Future<Output = Changes> + Send;
}

macro_rules! tools {
    ($($variant:ident [$tool:ident $about:literal];)+) => {
        /// The tools: the seed's names (`undertow_get_health` for the web server, from the
        /// subsystem table), then the subsystems the seed did not have.
        const TOOLS: &[(&str, Option<Subsystem>, &str)] = &[
            ("system_get_health", None, "The whole service: overall status and 0-100 score (the weakest subsystem's), every subsystem's status and score, and all current issues worst first, each with a code, a message and a suggested action. Start here, then call a subsystem's tool for its entities."),
            $((stringify!($tool), Some(Subsystem::$variant), $about),)+
        ];
    };
}
for_each_subsystem!(tools: variant tool);

/// Most transitions the history tool lists.
const MAX_LISTED: usize = 10_000;

const HISTORY_TOOL: &str = "health_get_history";
const HISTORY_DESCRIPTION: &str = "When and how health changed: the status transitions of the system and each subsystem, newest first (time, from, to, score, issue codes added and removed), and the share of the last hour and day each spent healthy, warning and critical. Use it to tell a new problem from a flapping one.";

/// The tool a name calls: what it reads (`None` for the system report).
fn tool(name: &str) -> Option<Option<Subsystem>> {
    TOOLS
        .iter()
        .find(|(tool, ..)| *tool == name)
        .map(|(_, subsystem, _)| *subsystem)
}

/// A tool's arguments, or the error that names the bad one.
fn arguments<T: DeserializeOwned>(arguments: Option<&Map<String, Value>>) -> Result<T, McpError> {
    from_json(arguments).map_err(|bad| McpError::invalid_params(bad.message, None))
}

const SCHEME: &str = "health://";

/// The resource a URI names: `health://system` or `health://{subsystem key}`.
fn resource(uri: &str) -> Option<Option<Subsystem>> {
    match uri.strip_prefix(SCHEME)? {
        "system" => Some(None),
        key => key.parse::<Subsystem>().ok().map(Some),
    }
}

fn resource_uri(subsystem: Option<Subsystem>) -> String {
    format!("{SCHEME}{}", subsystem.map_or("system", Subsystem::key))
}

/// One MCP session's handler: made per session by the transport.
#[derive(Clone)]
pub struct HealthTools<R> {
    reports: R,
    /// `resources/subscribe` subscriptions of this session, by URI.
    subscriptions: Arc<Subscriptions>,
}

/// The tasks that send a session's resource updates; they end with the session.
#[derive(Default)]
struct Subscriptions(Mutex<HashMap<String, tokio::task::AbortHandle>>);

impl Subscriptions {
    fn set(&self, uri: String, task: Option<tokio::task::AbortHandle>) {
        let mut tasks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let previous = match task {
            Some(task) => tasks.insert(uri, task),
            None => tasks.remove(&uri),
        };
        if let Some(previous) = previous {
            previous.abort();
        }
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        let tasks = self.0.get_mut().unwrap_or_else(|e| e.into_inner());
        for task in tasks.values() {
            task.abort();
        }
    }
}

impl<R: Reports> HealthTools<R> {
    pub fn new(reports: R) -> Self {
        Self {
            reports,
            subscriptions: Arc::default(),
        }
    }

    async fn report(&self, subsystem: Option<Subsystem>, view: View) -> Result<Value, McpError> {
        self.reports
            .read(subsystem, view)
            .await
            .map_err(|problem| McpError::internal_error(problem, None))
    }

    /// The URIs of `filter` that name a resource, and what they name.
    fn followed(filter: &SubscriptionFilter) -> Vec<(String, Option<Subsystem>)> {
        filter
            .resource_subscriptions
            .iter()
            .flatten()
            .filter_map(|uri| resource(uri).map(|subsystem| (uri.clone(), subsystem)))
            .collect()
    }
}

impl<R: Reports> ServerHandler for HealthTools<R> {
    fn get_info(&self) -> InitializeResult {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_subscribe()
            .build();
        InitializeResult::new(capabilities)
            .with_server_info(Implementation::new(
                "healthscore",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Read-only health reports of a running service. Call system_get_health first: it \
                 gives the overall status, each subsystem's score and the issues worst first, each \
                 with a suggested action. Then call the subsystem's tool (datasource_get_health, \
                 executor_get_health...) to see which entity is at fault. Subscribe to \
                 health://system or health://{subsystem} to hear when a report changes.",
            )
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let schema = schema_for_type::<ReportArgs>();
        let tools = TOOLS
            .iter()
            .map(|(name, _, description)| Tool::new(*name, *description, schema.clone()))
            .chain([Tool::new(
                HISTORY_TOOL,
                HISTORY_DESCRIPTION,
                schema_for_type::<HistoryArgs>(),
            )])
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if request.name == HISTORY_TOOL {
            let query = arguments::<HistoryArgs>(request.arguments.as_ref())?.query(MAX_LISTED);
            let answer = self
                .reports
                .history(query)
                .await
                .map_err(|problem| McpError::internal_error(problem, None))?;
            return Ok(CallToolResult::structured(answer).into());
        }
        let Some(subsystem) = tool(&request.name) else {
            return Err(McpError::invalid_params(
                format!("unknown tool {:?}", request.name),
                None,
            ));
        };
        let view = arguments::<ReportArgs>(request.arguments.as_ref())?.view();
        let report = self.report(subsystem, view).await?;
        Ok(CallToolResult::structured(report).into())
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let resources = std::iter::once(None)
            .chain(Subsystem::ALL.iter().copied().map(Some))
            .map(|subsystem| {
                let name = subsystem.map_or("system", Subsystem::key);
                Resource::new(resource_uri(subsystem), name)
                    .with_description(format!("The {name} health report (JSON), live"))
                    .with_mime_type("application/json")
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let Some(subsystem) = resource(&request.uri) else {
            return Err(McpError::resource_not_found(
                format!(
                    "no resource {:?} (health://system or health://{{subsystem}})",
                    request.uri
                ),
                None,
            ));
        };
        let report = self.report(subsystem, View::default()).await?;
        let contents = ResourceContents::text(report.to_string(), request.uri)
            .with_mime_type("application/json");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    #[allow(deprecated)] // the 2025 protocols' subscriptions, for the clients that speak them
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let Some(subsystem) = resource(&request.uri) else {
            return Err(McpError::resource_not_found(
                format!("no resource {:?}", request.uri),
                None,
            ));
        };
        let mut changes = self.reports.changes(subsystem).await;
        let (peer, uri) = (context.peer, request.uri.clone());
        let task = tokio::spawn(async move {
            while changes.next().await.is_some() {
                let update = ResourceUpdatedNotificationParam::new(uri.clone());
                if peer.notify_resource_updated(update).await.is_err() {
                    break;
                }
            }
        });
        self.subscriptions
            .set(request.uri, Some(task.abort_handle()));
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscriptions.set(request.uri, None);
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let uris = Self::followed(requested)
            .into_iter()
            .map(|(uri, _)| uri)
            .collect();
        let mut accepted = SubscriptionFilter::new();
        accepted.resource_subscriptions = Some(uris);
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let mut merged: Pin<Box<dyn Stream<Item = String> + Send>> =
            Box::pin(tokio_stream::empty());
        for (uri, subsystem) in Self::followed(context.accepted()) {
            let changes = self.reports.changes(subsystem).await;
            merged = Box::pin(merged.merge(changes.map(move |()| uri.clone())));
        }
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                uri = merged.next() => match uri {
                    Some(uri) => {
                        if context.sink().notify_resource_updated(uri).await.is_err() {
                            return Ok(());
                        }
                    }
                    None => return Ok(()),
                },
            }
        }
    }
}

/// [`Reports`] over this process's engine.
pub mod local {
    use tokio_stream::wrappers::WatchStream;

    use super::*;
    use crate::{
        core::{json, published::Follow},
        engine::Engine,
    };

    #[derive(Clone)]
    pub struct Local(pub Engine);

    impl Reports for Local {
        async fn read(&self, subsystem: Option<Subsystem>, view: View) -> Result<Value, String> {
            let state = self.0.state();
            let value = match subsystem {
                None => serde_json::to_value(json::system(&state.system, view)),
                Some(subsystem) => {
                    serde_json::to_value(json::report(state.report(subsystem), view))
                }
            };
            value.map_err(|error| error.to_string())
        }

        async fn history(&self, query: history::Query) -> Result<Value, String> {
            Ok(self.0.history_answer(&query).json())
        }

        async fn changes(&self, subsystem: Option<Subsystem>) -> Changes {
            let mut follow = Follow::new(subsystem.into_iter().collect(), None);
            let ticks = WatchStream::new(self.0.subscribe())
                .filter_map(move |state| follow.is_news(&state).then_some(()))
                // The first is the state as it is.
                .skip(1);
            Box::pin(ticks)
        }
    }
}
