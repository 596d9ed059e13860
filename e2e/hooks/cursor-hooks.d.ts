// Cursor's hook payloads and answers, written from Cursor's documentation
// (https://cursor.com/docs/agent/hooks): Cursor publishes no type package (the `cursor-hooks`
// package its docs point to is not on the npm registry), so these are ours, kept to the docs.

export interface CursorHookBase {
  hook_event_name: string;
  conversation_id: string;
  generation_id: string;
  workspace_roots: string[];
  model?: string;
  cursor_version?: string;
  user_email?: string | null;
}

export interface BeforeShellExecutionInput extends CursorHookBase {
  hook_event_name: "beforeShellExecution";
  command: string;
  cwd: string;
}

export interface BeforeMCPExecutionInput extends CursorHookBase {
  hook_event_name: "beforeMCPExecution";
  tool_name: string;
  /** The tool's arguments, as a JSON string. */
  tool_input: string;
  url?: string;
  command?: string;
}

export interface BeforeReadFileInput extends CursorHookBase {
  hook_event_name: "beforeReadFile";
  file_path: string;
  content: string;
  attachments: Array<{ type: string; file_path?: string; filePath?: string }>;
}

export interface PreToolUseInput extends CursorHookBase {
  hook_event_name: "preToolUse";
  tool_name: string;
  tool_input: Record<string, unknown>;
}

export interface PostToolUseInput extends CursorHookBase {
  hook_event_name: "postToolUse";
  tool_name: string;
  tool_input: Record<string, unknown>;
  tool_output: string;
}

export interface BeforeSubmitPromptInput extends CursorHookBase {
  hook_event_name: "beforeSubmitPrompt";
  prompt: string;
  attachments: Array<{ type: string; file_path?: string; filePath?: string }>;
}

/** beforeShellExecution, beforeMCPExecution, preToolUse. */
export interface PermissionOutput {
  permission: "allow" | "deny" | "ask";
  user_message?: string;
  agent_message?: string;
}

/** beforeReadFile: the permission only. */
export interface ReadFileOutput {
  permission: "allow" | "deny";
}

export interface BeforeSubmitPromptOutput {
  continue: boolean;
  user_message?: string;
}

export interface PostToolUseOutput {
  additional_context?: string;
}
