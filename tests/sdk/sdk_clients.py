"""The official OpenAI (Chat and Responses) and Anthropic Python SDKs as clients of shadowgate.

Run by tests/sdk.rs with the proxy's base URL. Exits non-zero on the first
failure; prints 'N passed, 0 failed' otherwise.
"""
import json
import sys

import anthropic
import openai
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes

BASE = sys.argv[1]
ANSWER = "Shadow traffic lets you compare two runtimes on real requests without risk."
passed = 0


def check(name, cond, detail=""):
    global passed
    if not cond:
        print(f"FAILED {name}: {detail}", file=sys.stderr)
        print(f"{passed} passed, 1 failed")
        sys.exit(1)
    passed += 1


oa = openai.OpenAI(base_url=f"{BASE}/v1", api_key="sk-test-not-a-key", max_retries=0)
an = anthropic.Anthropic(base_url=BASE, api_key="sk-ant-test-not-a-key", max_retries=0)
weather = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}, "required": ["city"]}

for model in ["gpt-4o", "gpt-via-anthropic"]:
    r = oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "What is shadow traffic?"}])
    check(f"openai {model} text", r.choices[0].message.content == ANSWER, r)
    check(f"openai {model} usage", r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage)

    chunks = list(oa.chat.completions.create(model=model, stream=True, stream_options={"include_usage": True},
                                             messages=[{"role": "user", "content": "What is shadow traffic?"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check(f"openai {model} stream text", text == ANSWER, text)
    check(f"openai {model} stream usage", chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0, chunks[-1])

    r = oa.chat.completions.create(model=model, messages=[{"role": "user", "content": "Weather in Paris and Tokyo?"}],
                                   tools=[{"type": "function", "function": {"name": "get_weather", "parameters": weather}}],
                                   extra_headers={"x-mock-script": "tools"})
    calls = r.choices[0].message.tool_calls
    check(f"openai {model} tool calls", r.choices[0].finish_reason == "tool_calls" and [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Tokyo"], r)

    stream = oa.chat.completions.create(model=model, stream=True, messages=[{"role": "user", "content": "Weather?"}],
                                        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": weather}}],
                                        extra_headers={"x-mock-script": "tools"})
    args = {}
    finish = None
    for c in stream:
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            args[tc.index] = args.get(tc.index, "") + (tc.function.arguments or "")
        if c.choices and c.choices[0].finish_reason:
            finish = c.choices[0].finish_reason
    check(f"openai {model} streamed tool arguments", finish == "tool_calls" and [json.loads(a)["city"] for _, a in sorted(args.items())] == ["Paris", "Tokyo"], args)

try:
    oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-mock-script": "rate_limit"})
    check("openai rate limit raises", False)
except openai.RateLimitError as e:
    check("openai rate limit is a RateLimitError", e.status_code == 429, e)

# Responses clients: same protocol (gpt-5), to Anthropic, and to Chat Completions (gpt-4o).
fn_tool = {"type": "function", "name": "get_weather", "parameters": weather}
for model in ["gpt-5", "responses-via-anthropic", "gpt-4o"]:
    r = oa.responses.create(model=model, input="What is shadow traffic?", instructions="Be brief.")
    check(f"responses {model} output_text", r.output_text == ANSWER and r.status == "completed", r)
    check(f"responses {model} usage", r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens and r.usage.output_tokens > 0, r.usage)

    events = list(oa.responses.create(model=model, input="What is shadow traffic?", stream=True))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    terminal = [e for e in events if e.type in ("response.completed", "response.incomplete", "response.failed")]
    seqs = [e.sequence_number for e in events]
    check(f"responses {model} stream text", text == ANSWER, text)
    check(f"responses {model} one terminal event with usage", len(terminal) == 1 and events[-1].type == "response.completed"
          and events[-1].response.usage.output_tokens > 0, events[-1])
    check(f"responses {model} sequence numbers", seqs == list(range(len(events))), seqs)

    r = oa.responses.create(model=model, input="Weather in Paris and Tokyo?", tools=[fn_tool], extra_headers={"x-mock-script": "tools"})
    calls = [o for o in r.output if o.type == "function_call"]
    check(f"responses {model} function calls", [json.loads(c.arguments)["city"] for c in calls] == ["Paris", "Tokyo"] and all(c.call_id for c in calls), r)

    # The client's next turn sends the calls and their outputs back.
    follow = [{"role": "user", "content": "Weather in Paris and Tokyo?"}]
    follow += [{"type": "function_call", "call_id": c.call_id, "name": c.name, "arguments": c.arguments} for c in calls]
    follow += [{"type": "function_call_output", "call_id": c.call_id, "output": "sunny"} for c in calls]
    r = oa.responses.create(model=model, input=follow, tools=[fn_tool])
    check(f"responses {model} tool results turn", r.output_text == ANSWER, r)

    with oa.responses.stream(model=model, input="Weather?", tools=[fn_tool], extra_headers={"x-mock-script": "tools"}) as s:
        final = s.get_final_response()
    calls = [o for o in final.output if o.type == "function_call"]
    check(f"responses {model} streamed function calls", [json.loads(c.arguments)["city"] for c in calls] == ["Paris", "Tokyo"], final)

try:
    oa.responses.create(model="responses-via-anthropic", input="hi", previous_response_id="resp_123")
    check("responses stateful field across protocols raises", False)
except openai.BadRequestError as e:
    check("responses previous_response_id across protocols is a 400 naming it", e.status_code == 400 and "previous_response_id" in str(e), e)

# Chat and Messages clients in front of a Responses upstream.
r = oa.chat.completions.create(model="claude-via-responses", messages=[{"role": "user", "content": "What is shadow traffic?"}])
check("openai chat via responses text", r.choices[0].message.content == ANSWER, r)

for model in ["claude-sonnet-4-5", "claude-via-openai", "claude-via-responses"]:
    m = an.messages.create(model=model, max_tokens=256, messages=[{"role": "user", "content": "What is shadow traffic?"}])
    check(f"anthropic {model} text", m.content[0].text == ANSWER and m.stop_reason == "end_turn", m)

    with an.messages.stream(model=model, max_tokens=256, messages=[{"role": "user", "content": "What is shadow traffic?"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    check(f"anthropic {model} stream text", text == ANSWER and final.usage.output_tokens > 0, final)

    m = an.messages.create(model=model, max_tokens=256, messages=[{"role": "user", "content": "Weather?"}],
                           tools=[{"name": "get_weather", "input_schema": weather}], extra_headers={"x-mock-script": "tools"})
    uses = [b for b in m.content if b.type == "tool_use"]
    check(f"anthropic {model} tool use", m.stop_reason == "tool_use" and [u.input["city"] for u in uses] == ["Paris", "Tokyo"], m)

    with an.messages.stream(model=model, max_tokens=256, messages=[{"role": "user", "content": "Weather?"}],
                            tools=[{"name": "get_weather", "input_schema": weather}], extra_headers={"x-mock-script": "tools"}) as s:
        final = s.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    check(f"anthropic {model} streamed tool use", [u.input["city"] for u in uses] == ["Paris", "Tokyo"], final)

try:
    an.messages.create(model="claude-via-openai", max_tokens=10, messages=[{"role": "user", "content": "hi"}], extra_headers={"x-mock-script": "server_error"})
    check("anthropic server error raises", False)
except anthropic.InternalServerError as e:
    check("anthropic 500 is an InternalServerError", e.status_code == 500, e)

# Gemini clients (google-genai): same protocol, to Chat, to Anthropic.
gc = genai.Client(api_key="gemini-test-not-a-key", http_options=gtypes.HttpOptions(base_url=BASE))
def gconfig(script=None, tools=None):
    return gtypes.GenerateContentConfig(
        tools=tools, http_options=gtypes.HttpOptions(headers={"x-mock-script": script}) if script else None,
        automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True) if tools else None)
gtools = [gtypes.Tool(function_declarations=[gtypes.FunctionDeclaration(name="get_weather", parameters_json_schema=weather)])]
for model in ["gemini-2.5-flash", "gemini-via-openai", "gemini-via-anthropic"]:
    r = gc.models.generate_content(model=model, contents="What is shadow traffic?")
    check(f"gemini {model} text", r.text == ANSWER and r.candidates[0].finish_reason == gtypes.FinishReason.STOP, r)
    u = r.usage_metadata
    check(f"gemini {model} usage", u.total_token_count == u.prompt_token_count + u.candidates_token_count + (u.thoughts_token_count or 0) and u.candidates_token_count > 0, u)

    chunks = list(gc.models.generate_content_stream(model=model, contents="What is shadow traffic?"))
    text = "".join(c.text or "" for c in chunks)
    check(f"gemini {model} stream text", text == ANSWER, text)
    check(f"gemini {model} stream finish and usage", chunks[-1].candidates[0].finish_reason == gtypes.FinishReason.STOP
          and chunks[-1].usage_metadata.candidates_token_count > 0, chunks[-1])

    r = gc.models.generate_content(model=model, contents="Weather in Paris and Tokyo?", config=gconfig("tools", gtools))
    calls = r.function_calls or []
    check(f"gemini {model} function calls", [c.args["city"] for c in calls] == ["Paris", "Tokyo"] and all(c.name == "get_weather" for c in calls), r)

    # The next turn: the model's call parts as they came (signatures included), then the results.
    history = [gtypes.Content(role="user", parts=[gtypes.Part(text="Weather in Paris and Tokyo?")]), r.candidates[0].content,
               gtypes.Content(role="user", parts=[gtypes.Part.from_function_response(name=c.name, response={"output": "sunny"}) for c in calls])]
    r2 = gc.models.generate_content(model=model, contents=history, config=gconfig(None, gtools))
    check(f"gemini {model} function results turn", r2.text == ANSWER, r2)

    calls = []
    for c in gc.models.generate_content_stream(model=model, contents="Weather?", config=gconfig("tools", gtools)):
        calls += c.function_calls or []
    check(f"gemini {model} streamed function calls", [c.args["city"] for c in calls] == ["Paris", "Tokyo"], calls)

try:
    gc.models.generate_content(model="gemini-2.5-flash", contents="hi", config=gconfig("rate_limit"))
    check("gemini rate limit raises", False)
except genai_errors.ClientError as e:
    check("gemini 429 is a ClientError", e.code == 429, e)

# Chat and Messages clients in front of a Gemini upstream.
r = oa.chat.completions.create(model="claude-via-gemini", messages=[{"role": "user", "content": "Weather?"}],
                               tools=[{"type": "function", "function": {"name": "get_weather", "parameters": weather}}],
                               extra_headers={"x-mock-script": "tools"})
calls = r.choices[0].message.tool_calls
check("openai chat via gemini tool calls", r.choices[0].finish_reason == "tool_calls" and [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Tokyo"], r)
m = an.messages.create(model="claude-via-gemini", max_tokens=256, messages=[{"role": "user", "content": "What is shadow traffic?"}])
check("anthropic via gemini text", m.content[0].text == ANSWER and m.stop_reason == "end_turn", m)
with an.messages.stream(model="claude-via-gemini", max_tokens=256, messages=[{"role": "user", "content": "What is shadow traffic?"}]) as st:
    check("anthropic via gemini stream text", "".join(st.text_stream) == ANSWER)

print(f"{passed} passed, 0 failed")
