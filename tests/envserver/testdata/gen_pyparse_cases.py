#!/usr/bin/env python3
"""Generates pyparse_cases.jsonl and decode_cases.jsonl with CPython 3.11 as the reference.

decode: BFCL's prompting-mode decoder (bfcl_eval/model_handler/utils.py: default_decode_ast_prompting,
ast_parse, resolve_ast_call, resolve_ast_by_type, decoded_output_to_execution_list,
parse_nested_value), copied verbatim except that BinOp is only ever fed literal arithmetic here.
pyparse: compile(src, '<string>', 'eval') for the SyntaxError text, ast.unparse for valid input.
Run: python3 gen_pyparse_cases.py  (writes next to this file)
"""
import ast, json, os, sys

def resolve_ast_call(elem):
    func_parts = []
    func_part = elem.func
    while isinstance(func_part, ast.Attribute):
        func_parts.append(func_part.attr)
        func_part = func_part.value
    if isinstance(func_part, ast.Name):
        func_parts.append(func_part.id)
    func_name = ".".join(reversed(func_parts))
    args_dict = {}
    for arg in elem.keywords:
        output = resolve_ast_by_type(arg.value)
        args_dict[arg.arg] = output
    return {func_name: args_dict}

def resolve_ast_by_type(value):
    if isinstance(value, ast.Constant):
        if value.value is Ellipsis:
            output = "..."
        else:
            output = value.value
    elif isinstance(value, ast.UnaryOp):
        output = -value.operand.value
    elif isinstance(value, ast.List):
        output = [resolve_ast_by_type(v) for v in value.elts]
    elif isinstance(value, ast.Dict):
        output = {resolve_ast_by_type(k): resolve_ast_by_type(v) for k, v in zip(value.keys, value.values)}
    elif isinstance(value, ast.NameConstant):
        output = value.value
    elif isinstance(value, ast.BinOp):
        output = eval(ast.unparse(value))
    elif isinstance(value, ast.Name):
        output = value.id
    elif isinstance(value, ast.Call):
        if len(value.keywords) == 0:
            output = ast.unparse(value)
        else:
            output = resolve_ast_call(value)
    elif isinstance(value, ast.Tuple):
        output = tuple(resolve_ast_by_type(v) for v in value.elts)
    elif isinstance(value, ast.Lambda):
        output = eval(ast.unparse(value.body[0].value))
    elif isinstance(value, ast.Ellipsis):
        output = "..."
    elif isinstance(value, ast.Subscript):
        try:
            output = ast.unparse(value.body[0].value)
        except:
            output = ast.unparse(value.value) + "[" + ast.unparse(value.slice) + "]"
    else:
        raise Exception(f"Unsupported AST type: {type(value)}")
    return output

def ast_parse(input_str):
    cleaned_input = input_str.strip().strip("'")
    parsed = ast.parse(cleaned_input, mode="eval")
    extracted = []
    if isinstance(parsed.body, ast.Call):
        extracted.append(resolve_ast_call(parsed.body))
    else:
        for elem in parsed.body.elts:
            assert isinstance(elem, ast.Call)
            extracted.append(resolve_ast_call(elem))
    return extracted

def default_decode_ast_prompting(result):
    result = result.strip("`\n ")
    if not result.startswith("["):
        result = "[" + result
    if not result.endswith("]"):
        result = result + "]"
    return ast_parse(result)

def parse_nested_value(value):
    if isinstance(value, dict):
        if all(isinstance(v, dict) for v in value.values()):
            func_name = list(value.keys())[0]
            args = value[func_name]
            args_str = ", ".join(f"{k}={parse_nested_value(v)}" for k, v in args.items())
            return f"{func_name}({args_str})"
        else:
            args_str = ", ".join(f"'{k}': {parse_nested_value(v)}" for k, v in value.items())
            return "{" + args_str + "}"
    return repr(value)

def decoded_output_to_execution_list(decoded_output):
    execution_list = []
    for function_call in decoded_output:
        for key, value in function_call.items():
            args_str = ", ".join(f"{k}={parse_nested_value(v)}" for k, v in value.items())
            execution_list.append(f"{key}({args_str})")
    return execution_list

DECODE_INPUTS = [
    "[f(a=1)]", "f(a=1), g(b=\"x\")", "[f(a=+5)]", "[f(a=foo)]", "[f(a=g(1,2))]", "[f(a=1+2)]",
    "[__import__(\"os\").system(\"ls\")]", "f(a=1)", "", "[]", "```\n[f(a=1)]\n```", "  [f(a=1)]  ",
    "\t[f(a=1)]", "[f(1, a=2)]", "[f(1, 2)]", "[f(a=1, a=2)]", "[f(**kw)]", "[(f)(a=1)]",
    "[f(a=1).g(b=2)]", "[f(a=1)()]", "[x[0](a=1)]", "[a.b.c(d=1)]", "[f(a=...)]", "[f(a=[1, 'x', None])]",
    "[f(a=(1, 2))]", "[f(a=(1,))]", "[f(a={'k': 1})]", "[f(a={'k': {}})]", "[f(a={})]", "[f(a={1: 2})]",
    "[f(a={'x': {'y': 1}})]", "[f(a=[{'k': 1}])]", "[f(a=-5)]", "[f(a=not True)]", "[f(a=-x)]",
    "[f(a=-(-1))]", "[f(a=~3)]", "[f(a=-1.5)]", "[f(a='a'*3)]", "[f(a=2**10)]", "[f(a=1/0)]",
    "[f(a=7//2)]", "[f(a=-7%3)]", "[f(a=1.5*2)]", "[f(a=[1]+[2])]", "[f(a=true)]", "[f(a=null)]",
    "[f(a=g(x=1))]", "[f(a=g(1, x=1))]", "[f(a=x[0])]", "[f(a=x[1:2])]", "[f(a=x[1, 2])]",
    "[f(a=lambda: 1)]", "[f(a={1, 2})]", "[f(a=f'x{y}')]", "[f(a=1 < 2)]", "[f(a=x and y)]",
    "[f(a=os.path)]", "[f(a=[i for i in x])]", "[f(a=1 if x else 2)]", "[f(a=*x)]", "[f(*x)]",
    "[1]", "[f]", "[f(a=1), 2]", "[f(a=1e400)]", "[f(a=0x1F)]", "[f(a=1e10)]", "[f(a=1e-5)]",
    "[f(a=r'a\\n')]", "[f(a='a' 'b')]", "[f(a={\"it's\": 1})]", "[f(a='\\n')]", "[f(a='\\x00')]",
    "[f(a='héllo')]", "[f(a='it\\'s')]", "[f(a=\"say \\\"hi\\\"\")]", "[f(a=1_000)]", "[f(a=0o17)]",
    "[f(a=0b101)]", "[f(a=.5)]", "[f(a=5.)]", "[f(a=1e16)]", "[f(a=123456789012345678)]",
    "[f(a=True, b=False, c=None)]", "[f(a={'a': 1, 'b': {'c': 2}})]", "[f(a={True: 1, 1: 2})]",
    "[f(a=[g(x=1)])]", "[f(a=g())]", "[f(a=g(*y))]", "[f(a=g(1+2))]", "[f(a=g('x'))]",
    "[f(a=(1, [2, {'k': (3,)}]))]", "[f(a={(1, 2): 3})]", "[f(a={'k': [1]})]",
    "[f(a=1)", "[f(a=1]", "f(a=1))", "[f(a=1 b=2)]", "[f(a='x)]", "[f(a=1,,b=2)]", "[f(a=)]",
    "[f(a=1, 2)]", "[f(1=2)]", "[f(True=1)]", "[f(**a, 2)]", "[f(**a, *b)]", "[f(a=1)] [g(b=2)]",
    "I cannot help with that.", "[f(a=1)]\n[g(b=2)]", "[f(a=1)],", "[f(a=1),]", "[,]",
    "[cd(folder='document'), ls()]", "[mv(source='a.txt', destination='b')]",
    "[post_tweet(content='Hello (world)', tags=['#a'])]", "[f(a={'x': 1, **y})]",
    "[f(a=[1, 2][0])]", "[f(a=x.y[0])]", "[f(a=x[0][1])]", "[f(a=x[:])]", "[f(a=x[::2])]",
    "[f(a=2**-1)]", "[f(a=(1+2)*3)]", "[f(a=-2**2)]", "[f(a=g(a, *b, c=1, **d))]",
    "[f(a=g(-1))]", "[f(a=g(not x))]", "[f(a=g(x if y else z))]", "[f(a=g(lambda x: x))]",
    "[f(a=g((1, 2)))]", "[f(a=g([1, 2], {'a': 1}, {1, 2}))]", "[f(a=g(1.0, 1e16, 0.1))]",
    "[f(a=h.g(1))]", "[f(a=g(x)(y))]", "[f(a=g(x)[0])]", "['f(a=1)']", "'[f(a=1)]'",
    "[f(a=1)] # comment", "[f(a=1) # c\n]", "[f(\na=1)]", "[f(a='''x''')]", "[f(a=b'x')]",
    "[f(a=1j)]", "[f(a=99999999999999999999)]", "[f(a=1 if 2 else 3)]", "[f(a=(x := 1))]",
]

PARSE_INPUTS = [
    "f(", "f(a=1", "f(a=1))", "f(a=1]", "f(a='x)", "f(a=1 b=2)", "f(a=1,,b=2)", "f(a=)",
    "f(a=1, 2)", "f(1=2)", "f(True=1)", "f(**a, 2)", "f(**a, *b)", "", "   ", "1 2", "f(a=1)\n",
    "f(a=1)\ng()", "f(a='''x", "f(a=0b2)", "f(a=08)", "f(a=1abc)", "f(a=1_)", "f(a=$)", "f(a=?)",
    "f(a=€)", "f(a='\\x4')", "f(a=b'é')", "f(a='a' b'b')", "f(a={1: })", "f(a={1: 2, 3})",
    "f(a=1) g()", "[1, 2 3]", "(1 2)", "f(x for x in y)", "f(a=lambda x: x)", "f(a=[x for x in y if z])",
    "f(a={k: v for k, v in d})", "f(a={x for x in y})", "f(*a, **b)", "a.b.c(d=1)", "f(a=1)(b=2)",
    "x[1:2, ::3]", "x[1, 2]", "-(-1)", "not not x", "a if b else c", "a < b <= c", "a and b or c",
    "a is not b", "a not in b", "f(a=x.y.z)", "f(a=1 .real)", "2 ** -1", "-2 ** 2", "(-2) ** 2",
    "(a, b)", "(a,)", "()", "[]", "{}", "{1}", "{**a, 'b': 1}", "f(a=...)", "f(a='\\N{BULLET}')",
    "f(a=\"it's\")", "f(a='\\u00e9')", "f(a=r'\\d+')", "f(a=1e309)", "f(a=0.1 + 0.2)",
    "f(a=(1 + 2) * 3)", "f(a=1 + 2 * 3)", "f(a=(1, 2)[0])", "f(a=f'{x}')", "lambda: 1", "x := 1",
    "(x := 1)", "*a", "f(a=*b)", "f(a=1,)", "f(,)", "f(a=1 if x)", "f(a='x' 'y')", "print",
    "\\", "f(a=1) \\\n", "f(a=\n1)", "f(a=[1,\n2)", "((((((((((1))))))))))", "f(a=\"\\\"\")",
    "f(a=1) # c", "f(a=True, b=None, c=False)", "x[0](a=1)", "f()()", "f(a=not)", "f(a=-)",
    "f(a=1;)", "f(a=1);", "f(a=[1,]])", "f(a='\\t\\n\\r')", "f(a=0xFF)", "f(a=0o777)",
    "f(a=1.5e-3)", "f(a=1E5)", "f(a=00)", "f(a=0_0)", "f(a=1__0)",
]

def decode_case(s):
    try:
        calls = decoded_output_to_execution_list(default_decode_ast_prompting(s))
        return {"input": s, "calls": calls}
    except SyntaxError as e:
        return {"input": s, "error": True, "syntax": True, "message": str(e)}
    except Exception as e:
        return {"input": s, "error": True, "syntax": False, "message": f"{type(e).__name__}: {e}"}

def parse_case(s):
    try:
        compile(s, "<string>", "eval")
    except SyntaxError as e:
        return {"input": s, "error": str(e)}
    except Exception as e:  # e.g. ValueError
        return {"input": s, "error": str(e)}
    return {"input": s, "unparse": ast.unparse(ast.parse(s.lstrip(" \t"), mode="eval").body)}

here = os.path.dirname(os.path.abspath(__file__))
assert sys.version_info[:2] == (3, 11), "the reference is CPython 3.11"
with open(os.path.join(here, "decode_cases.jsonl"), "w") as f:
    for s in DECODE_INPUTS:
        f.write(json.dumps(decode_case(s), ensure_ascii=False) + "\n")
with open(os.path.join(here, "pyparse_cases.jsonl"), "w") as f:
    for s in PARSE_INPUTS:
        f.write(json.dumps(parse_case(s), ensure_ascii=False) + "\n")
