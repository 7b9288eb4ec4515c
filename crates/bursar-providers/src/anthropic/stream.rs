//! Anthropic's streamed Messages events → OpenAI chat-completion chunks.
//!
//! `message_start` opens the answer (role chunk), each `content_block_*` becomes content,
//! reasoning or tool-call deltas (tool calls numbered in the order they start, as OpenAI
//! does), `message_delta` carries the finish reason and the output tokens, and
//! `message_stop` ends with the usage chunk and `[DONE]`. An `error` event ends the stream
//! with that error; a body that ends before `message_stop` is a broken stream.

use super::error_status;
use super::request::JSON_TOOL;
use super::response::{AnthropicUsage, finish_reason};
use crate::error::ProviderError;
use crate::formats::chat::ChunkWriter;
use crate::framing::Translator;
use crate::framing::sse::{Event, SseReader};
use serde::Deserialize;
use std::collections::HashMap;

enum BlockKind {
    Text,
    Thinking,
    /// A tool call, by its OpenAI index.
    Tool(u32),
    /// The JSON-schema tool: its input is the answer's content.
    JsonTool,
    Ignored,
}

pub struct StreamTranslator {
    reader: SseReader,
    out: ChunkWriter,
    json_mode: bool,
    usage: AnthropicUsage,
    blocks: HashMap<u64, BlockKind>,
    tools: u32,
    stopped: bool,
}

impl StreamTranslator {
    pub fn new(model: &str, created: u64, json_mode: bool) -> StreamTranslator {
        StreamTranslator {
            reader: SseReader::default(),
            out: ChunkWriter::new(String::new(), model, created),
            json_mode,
            usage: AnthropicUsage::default(),
            blocks: HashMap::new(),
            tools: 0,
            stopped: false,
        }
    }

    fn event(&mut self, event: Event, out: &mut Vec<u8>) -> Result<(), ProviderError> {
        if self.stopped {
            return Ok(());
        }
        let data: StreamEvent = match serde_json::from_str(&event.data) {
            Ok(d) => d,
            Err(e) => {
                return Err(ProviderError::InvalidResponse {
                    provider: "anthropic".into(),
                    detail: format!("a stream event is not Anthropic's ({e})"),
                });
            }
        };
        match data {
            StreamEvent::MessageStart { message } => {
                self.out.id = message.id;
                self.usage.merge(&message.usage);
                self.out.role(out);
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                let kind = match content_block {
                    StartBlock::Text { text } => {
                        if !text.is_empty() {
                            self.out.content(out, text);
                        }
                        BlockKind::Text
                    }
                    StartBlock::ToolUse { name, .. } if self.json_mode && name == JSON_TOOL => {
                        BlockKind::JsonTool
                    }
                    StartBlock::ToolUse { id, name } => {
                        let n = self.tools;
                        self.tools += 1;
                        self.out.tool_start(out, n, id, name, String::new());
                        BlockKind::Tool(n)
                    }
                    StartBlock::Thinking => BlockKind::Thinking,
                    StartBlock::Other => BlockKind::Ignored,
                };
                self.blocks.insert(index, kind);
            }
            StreamEvent::ContentBlockDelta { index, delta } => {
                match (self.blocks.get(&index), delta) {
                    (Some(BlockKind::Text), BlockDelta::TextDelta { text }) => {
                        self.out.content(out, text)
                    }
                    (Some(BlockKind::Thinking), BlockDelta::ThinkingDelta { thinking }) => {
                        self.out.reasoning(out, thinking)
                    }
                    (Some(BlockKind::Tool(n)), BlockDelta::InputJsonDelta { partial_json })
                        if !partial_json.is_empty() =>
                    {
                        self.out.tool_arguments(out, *n, partial_json)
                    }
                    (Some(BlockKind::JsonTool), BlockDelta::InputJsonDelta { partial_json })
                        if !partial_json.is_empty() =>
                    {
                        self.out.content(out, partial_json)
                    }
                    _ => {}
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    self.usage.merge(&u);
                }
                let finish = if self.json_mode && delta.stop_reason.as_deref() == Some("tool_use") {
                    Some("stop")
                } else {
                    finish_reason(delta.stop_reason.as_deref())
                };
                if let Some(reason) = finish {
                    self.out.finish(out, reason);
                }
            }
            StreamEvent::MessageStop => {
                self.stopped = true;
                self.out.usage_and_done(out, self.usage.openai());
            }
            StreamEvent::Error { error } => {
                let status = error_status(&error.kind);
                return Err(ProviderError::Upstream {
                    provider: "anthropic".into(),
                    status,
                    class: crate::error::ErrorClass::detect(
                        status,
                        Some(&error.kind),
                        &error.message,
                    ),
                    message: error.message,
                    kind: Some(error.kind),
                    param: None,
                });
            }
            StreamEvent::ContentBlockStop | StreamEvent::Ping | StreamEvent::Unknown => {}
        }
        Ok(())
    }
}

impl Translator for StreamTranslator {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), ProviderError> {
        for event in self.reader.push(bytes, "anthropic")? {
            self.event(event, out)?;
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), ProviderError> {
        if let Some(event) = self.reader.finish() {
            self.event(event, out)?;
        }
        if self.stopped {
            Ok(())
        } else {
            Err(ProviderError::Stream {
                provider: "anthropic".into(),
                detail: "the stream ended before message_stop".into(),
            })
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: u64,
        delta: BlockDelta,
    },
    ContentBlockStop,
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<AnthropicUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorBody,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    Thinking,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}
