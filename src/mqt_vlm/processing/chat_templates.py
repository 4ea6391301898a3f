"""Jinja chat templates saved with the processor, so `processor.apply_chat_template` (and with it
`pipeline("image-text-to-text")`, vLLM, any HF tool) renders Hugging Face multimodal messages
exactly as our own prompt builder does (`inference.prompting.build_prompt`):

- an image part becomes `<image>\\n` where the user put it (one image then a question is LLaVA-1.5's
  `<image>\\n{question}`); text parts are copied;
- system (and developer) messages, joined by newlines, replace vicuna_v1's fixed system sentence;
- vicuna_v1: `SYSTEM USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT:`, the `ASSISTANT:` header being
  the generation prompt; plain: the system text and a newline, then the turns (answers end in a
  newline); chat: the language model's own template, fed string contents.
"""

from __future__ import annotations

from typing import Any

from mqt_vlm.errors import MQTError
from mqt_vlm.processing.templates import IMAGE_TOKEN, VICUNA_SYSTEM

# content (a string or a list of parts) -> text; images -> "<image>\n"; refuses "<image>" typed as text.
# Every literal is a Jinja expression ({{ '...' }}): whitespace control ({%- -%}) never eats it.
_CONTENT_MACRO = (
    "{%- macro mqt_content(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- else -%}{%- for part in content -%}"
    "{%- if part['type'] == 'image' -%}{{ '" + IMAGE_TOKEN + "\\n' }}"
    "{%- elif part['type'] == 'text' -%}"
    "{%- if '" + IMAGE_TOKEN + "' in part['text'] -%}"
    "{{ raise_exception('Message text may not contain the image placeholder " + IMAGE_TOKEN
    + "; send images as image parts.') }}{%- endif -%}{{ part['text'] }}"
    "{%- else -%}{{ raise_exception('Unsupported content part type: ' + part['type']) }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
)

# system text (joined by newlines) and the alternation check shared by vicuna_v1 and plain
_PREAMBLE = (
    "{%- set ns = namespace(system='', turn=0) -%}"
    "{%- for message in messages if message['role'] in ['system', 'developer'] -%}"
    "{%- set ns.system = ns.system + ('\\n' if not loop.first else '') + mqt_content(message['content']) -%}"
    "{%- endfor -%}"
)
_CHECK_TURN = (
    "{%- if message['role'] not in ['user', 'assistant'] -%}"
    "{{ raise_exception('Unsupported role: ' + message['role']) }}{%- endif -%}"
    "{%- if (message['role'] == 'user') != (ns.turn % 2 == 0) -%}"
    "{{ raise_exception('Turns must alternate user, assistant, user, ... (after any system message).') }}"
    "{%- endif -%}"
)
_TURNS = "{%- for message in messages if message['role'] not in ['system', 'developer'] -%}" + _CHECK_TURN

VICUNA_V1 = (
    _CONTENT_MACRO + _PREAMBLE
    + "{{ ns.system if ns.system else '" + VICUNA_SYSTEM.replace("'", "\\'") + "' }}"
    + _TURNS
    + "{%- if message['role'] == 'user' -%}{{ (' ' if ns.turn == 0 else '') + 'USER: ' + mqt_content(message['content']) }}"
    "{%- else -%}{{ ' ASSISTANT: ' + mqt_content(message['content']) + '</s>' }}{%- endif -%}"
    "{%- set ns.turn = ns.turn + 1 -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ ' ASSISTANT:' }}{%- endif -%}"
)

PLAIN = (
    _CONTENT_MACRO + _PREAMBLE
    + "{%- if ns.system -%}{{ ns.system + '\\n' }}{%- endif -%}"
    + _TURNS
    + "{%- if message['role'] == 'user' -%}{{ mqt_content(message['content']) }}"
    "{%- else -%}{{ mqt_content(message['content']) + '\\n' }}{%- endif -%}"
    "{%- set ns.turn = ns.turn + 1 -%}"
    "{%- endfor -%}"
)

# Prefix for a language model's own template: list contents become strings first, so a text-only
# template renders multimodal messages (the image placeholder lands inside the user text).
_FLATTEN = (
    _CONTENT_MACRO
    + "{%- set mqt = namespace(messages=[]) -%}"
    "{%- for message in messages -%}"
    "{%- if message['content'] is string or message['content'] is none -%}"
    "{%- set mqt.messages = mqt.messages + [message] -%}"
    "{%- else -%}"
    "{%- set mqt.messages = mqt.messages + [{'role': message['role'], 'content': mqt_content(message['content'])}] -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- set messages = mqt.messages -%}"
)


def chat_template_for(template: str, tokenizer: Any = None) -> str | None:
    """The Jinja chat template of one of our prompt templates (`templates.TEMPLATES`); for "chat",
    the tokenizer's own template behind a step that flattens multimodal contents (None when the
    tokenizer has none)."""
    if template == "vicuna_v1":
        return VICUNA_V1
    if template == "plain":
        return PLAIN
    if template == "chat":
        own = getattr(tokenizer, "chat_template", None)
        if isinstance(own, dict):
            own = own.get("default")
        return _FLATTEN + own if isinstance(own, str) and own else None
    raise MQTError(f"Unknown template {template!r}; choose one of vicuna_v1, plain, chat.")


def is_processor_template(template: Any) -> bool:
    """Whether `template` is one this module makes (so a tokenizer that loaded it from the shared
    chat_template.jinja did not have it as its own)."""
    return isinstance(template, str) and (template in (VICUNA_V1, PLAIN) or template.startswith(_FLATTEN))
