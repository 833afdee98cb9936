import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import loopcontrols
tmpl_src = open('/work/shared/golden/chat/qwen2.5_chat_template.jinja').read()
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
def raise_exception(m): raise Exception(m)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters['tojson'] = tojson
env.globals['raise_exception'] = raise_exception
t = env.from_string(tmpl_src)
U = "\u00e9 \u2028 \x7f \x01 \ufeff 'q' \"d\" \\ 👍 \u00a0 \u3000 \u200b"
cases = [
 {"messages":[{"role":"user","content":"q"},{"role":"tool","content":{"a":[1,2.5,None,True,"it's", U]}}]},
 {"messages":[{"role":"tool","content":[1,"x\ny"]},{"role":"tool","content":5},{"role":"tool","content":None},{"role":"tool"}]},
 {"messages":[{"role":"system","content":None},{"role":"user","content":"u"}],"tools":[{"a":1e16,"b":1e-5,"c":123456789012345678901234567890,"d":-0.0,"e":0.1,"f":1.5e300,"g":U}]},
 {"messages":[{"role":"system"},{"role":"user","content":"u"}],"tools":[{"x":1}]},
 {"messages":[{"role":"user","content":"u"},{"role":"assistant","content":"c","tool_calls":[{"function":None},{"name":5,"arguments":{"k":[1.0,{"z":None}]}}]}]},
 {"messages":[{"role":"user","content":"u"},{"role":"assistant","content":"c","tool_calls":[{"name":"n"}]}]},
 {"messages":[{"role":"user","content":"u"},{"role":"assistant","content":5,"tool_calls":[{"name":"n","arguments":{}}]}]},
 {"messages":[{"role":"user","content":"u"},{"role":"assistant","content":None}]},
 {"messages":[{"role":"user","content":"u"},{"role":"assistant","content":"x","tool_calls":[]}]},
 {"messages":[{"role":"user","content":"u"},{"role":"assistant","content":"x","tool_calls":None}]},
 {"messages":[{"role":"user","content":"u"},{"role":"assistant","content":"x","tool_calls":{"name":"a"}}]},
 {"messages":[{"role":"user","content":"u"},"stringmsg",{"role":5,"content":"x"},{"role":"observation","content":"o"}]},
 {"messages":[]},
 {"messages":[{"role":"system","content":"s"},{"role":"system","content":"s2"},{"role":"user","content":"u"}],"tools":[]},
 {"messages":[{"role":"user","content":["list"]}]},
 {"messages":[{"role":"system","content":{"a":"b"}},{"role":"user","content":"u"}],"tools":[{"t":"x"}]},
 {"messages":[{"role":"user","content":"u"},{"role":"assistant","content":"","tool_calls":[{"type":"function","function":{"name":"f","arguments":"{\"a\": 1}"}},{"function":{"name":"g","arguments":None}}]}]},
 {"messages":[{"role":"user","content":"u"}],"tools":{"not":"list"}},
 {"messages":[{"role":"user","content":"u"}],"tools":"str"},
]
for c in cases:
    for agp in (False, True):
        req = dict(c); req["add_generation_prompt"] = agp
        try:
            out = {"text": t.render(messages=c["messages"], tools=c.get("tools"), documents=None, add_generation_prompt=agp, eos_token="<|im_end|>", pad_token="<|endoftext|>")}
        except Exception as e:
            out = {"error": type(e).__name__ + ": " + str(e)}
        print(json.dumps(req, ensure_ascii=False), file=open('req.jsonl','a'))
        print(json.dumps(out, ensure_ascii=False))
