//! The MCP server on rmcp: `tools/list` answers the tool definitions from `tools.rs` as written, and
//! `tools/call` runs a tool. A tool's `Err` is a result with `isError: true` (so the model reads what
//! was wrong with its arguments); an unknown tool name is a JSON-RPC error `-32602`.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use std::sync::Arc;

use crate::tools;

pub const SERVER_NAME: &str = "text-analysis-mcp";

/// The server handler: stateless, so one `Arc` of the parsed tool list is shared by every session.
#[derive(Clone)]
pub struct TextAnalysis {
    tools: Arc<Vec<Tool>>,
}

impl TextAnalysis {
    pub fn new() -> Self {
        let tools: Vec<Tool> =
            serde_json::from_value(tools::definitions()).expect("the tool definitions are valid MCP tools");
        TextAnalysis { tools: Arc::new(tools) }
    }
}

impl ServerHandler for TextAnalysis {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION")))
            .with_instructions("Text analysis: repeat a text, count its words, extract its keywords.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = request.arguments.unwrap_or_default();
        match tools::call(&request.name, &arguments) {
            None => Err(ErrorData::invalid_params(format!("Unknown tool: {}", request.name), None)),
            Some(Ok(text)) => Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into()),
            Some(Err(message)) => Ok(CallToolResult::error(vec![ContentBlock::text(message)]).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_three_tools_with_their_schemas_and_hints() {
        let server = TextAnalysis::new();
        let names: Vec<&str> = server.tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(names, vec!["repeat", "word_count", "extract_keywords"]);
        for tool in server.tools.iter() {
            assert_eq!(tool.input_schema["additionalProperties"], serde_json::json!(false));
            assert_eq!(tool.annotations.as_ref().and_then(|a| a.read_only_hint), Some(true));
        }
        assert!(server.get_tool("word_count").is_some() && server.get_tool("nope").is_none());
        assert_eq!(server.get_info().server_info.name, SERVER_NAME);
    }
}
