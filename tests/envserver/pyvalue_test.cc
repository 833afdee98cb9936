// PyValue / PyDict against CPython 3.11 behaviour. Expected strings were produced with
// python3.11 (repr(), json.dumps(), round(), json.loads()) and are quoted in the tables.
#include "envserver/pyvalue.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace envtune {
namespace {

using ::testing::HasSubstr;

PyValue S(const char* s) { return PyValue::Str(s); }
PyValue I(int64_t i) { return PyValue::Int(i); }
PyValue F(double d) { return PyValue::Float(d); }
PyValue B(bool b) { return PyValue::Bool(b); }

TEST(PyFloatReprTest, MatchesCPython) {
  struct Case {
    double value;
    const char* repr;
  };
  const Case kCases[] = {
      {1.0, "1.0"},
      {0.1, "0.1"},
      {-0.0, "-0.0"},
      {0.0, "0.0"},
      {5000.0, "5000.0"},
      {1e16, "1e+16"},
      {1e15, "1000000000000000.0"},
      {9999999999999998.0, "9999999999999998.0"},
      {1.5e20, "1.5e+20"},
      {123456789012345678.0, "1.2345678901234568e+17"},
      {1e-4, "0.0001"},
      {1e-5, "1e-05"},
      {0.0001234, "0.0001234"},
      {1.234e-5, "1.234e-05"},
      {1e-7, "1e-07"},
      {1e100, "1e+100"},
      {5e-324, "5e-324"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
      {2.675, "2.675"},
      {0.1 + 0.2, "0.30000000000000004"},
      {-1234.5, "-1234.5"},
      {100.0, "100.0"},
      {std::numeric_limits<double>::infinity(), "inf"},
      {-std::numeric_limits<double>::infinity(), "-inf"},
      {std::nan(""), "nan"},
  };
  for (const Case& c : kCases) {
    EXPECT_EQ(PyFloatRepr(c.value), c.repr) << c.repr;
    EXPECT_EQ(PyValue::Float(c.value).Repr(), c.repr);
    EXPECT_EQ(PyValue::Float(c.value).Str(), c.repr);
  }
}

TEST(PyStrReprTest, QuotingAndEscapes) {
  struct Case {
    const char* utf8;
    const char* repr;
  };
  const Case kCases[] = {
      {"", "''"},
      {"abc", "'abc'"},
      {"it's", "\"it's\""},
      {"say \"hi\"", "'say \"hi\"'"},
      {"both ' and \"", "'both \\' and \"'"},
      {"tab\there\\", "'tab\\there\\\\'"},
      {"nl\ncr\r", "'nl\\ncr\\r'"},
      {"\x01\x1f\x7f", "'\\x01\\x1f\\x7f'"},
      {"\xc2\x85", "'\\x85'"},             // U+0085 NEL: Cc
      {"\xc2\xa0", "'\\xa0'"},             // U+00A0 NBSP: Zs
      {"\xc2\xad", "'\\xad'"},             // U+00AD soft hyphen: Cf
      {"\xe2\x80\x8b", "'\\u200b'"},       // zero width space: Cf
      {"\xe2\x80\xa8", "'\\u2028'"},       // line separator: Zl
      {"\xef\xbb\xbf", "'\\ufeff'"},       // BOM: Cf
      {"\xf3\xa0\x80\x81", "'\\U000e0001'"},  // language tag: Cf
      {"\xc3\xa9", "'\xc3\xa9'"},          // é printable: kept
      {"\xe4\xb8\xad\xe6\x96\x87", "'\xe4\xb8\xad\xe6\x96\x87'"},
      {"\xf0\x9f\x98\x80", "'\xf0\x9f\x98\x80'"},  // emoji printable: kept
      {"\xe3\x80\x80", "'\\u3000'"},       // ideographic space: Zs
      {"\xee\x80\x80", "'\\ue000'"},       // private use: Co
      {"\xcd\xb8", "'\\u0378'"},           // unassigned: Cn
  };
  for (const Case& c : kCases) {
    EXPECT_EQ(PyStrRepr(c.utf8), c.repr) << c.repr;
    EXPECT_EQ(PyValue::Str(c.utf8).Repr(), c.repr);
    EXPECT_EQ(PyValue::Str(c.utf8).Str(), c.utf8);  // str() of a str is the text itself
  }
}

TEST(PyStrReprTest, InvalidUtf8IsEscapedNotFatal) {
  // Bytes that are not UTF-8 behave like surrogateescape'd code points (U+DC80..U+DCFF).
  EXPECT_EQ(PyStrRepr("a\xff" "b"), "'a\\udcffb'");
  EXPECT_EQ(PyStrRepr("\xe2\x80"), "'\\udce2\\udc80'");
  EXPECT_EQ(PyValue::Str("\xff").JsonDumps(), "\"\\udcff\"");
}

TEST(PyValueReprTest, Containers) {
  struct Case {
    PyValue value;
    const char* repr;
  };
  const std::vector<Case> kCases = {
      {PyValue(), "None"},
      {B(true), "True"},
      {B(false), "False"},
      {I(-42), "-42"},
      {PyValue::List(), "[]"},
      {PyValue::Tuple(), "()"},
      {PyValue::Tuple({I(1)}), "(1,)"},
      {PyValue::Tuple({I(1), S("a")}), "(1, 'a')"},
      {PyValue::Set(), "set()"},
      {PyValue::Set({I(3)}), "{3}"},
      {PyValue::Dict(), "{}"},
      {PyValue::List({F(1.0), S("a"), PyValue(), PyValue::Tuple({I(2)})}),
       "[1.0, 'a', None, (2,)]"},
      {PyValue::Dict({{S("k"), PyValue::List({B(true), F(1e-7)})}, {S("e"), PyValue::Dict()}}),
       "{'k': [True, 1e-07], 'e': {}}"},
      {PyValue::List({S("RMS"), S("SBK"), S("MPC")}), "['RMS', 'SBK', 'MPC']"},
      {PyValue::List({PyValue::Dict(
           {{S("error"), S("User not authenticated. Please log in to view tickets.")}})}),
       "[{'error': 'User not authenticated. Please log in to view tickets.'}]"},
      {PyValue::Dict({{I(1), S("x")}, {PyValue(), I(0)}, {F(2.5), S("it's")}}),
       "{1: 'x', None: 0, 2.5: \"it's\"}"},
  };
  for (const Case& c : kCases) {
    EXPECT_EQ(c.value.Repr(), c.repr);
    EXPECT_EQ(c.value.Str(), c.repr);
  }
}

TEST(PyValueJsonTest, DefaultDumps) {
  // d = {"a": [1, 2.5, None, True, "héllo 😀"], "b": {"c": (1, 2)}, 1: "x", None: 0,
  //      2.5: "f", False: "F"}
  PyValue d = PyValue::Dict({
      {S("a"), PyValue::List({I(1), F(2.5), PyValue(), B(true), S("h\xc3\xa9llo \xf0\x9f\x98\x80")})},
      {S("b"), PyValue::Dict({{S("c"), PyValue::Tuple({I(1), I(2)})}})},
      {I(1), S("x")},
      {PyValue(), I(0)},
      {F(2.5), S("f")},
      {B(false), S("F")},
  });
  EXPECT_EQ(d.JsonDumps(),
            "{\"a\": [1, 2.5, null, true, \"h\\u00e9llo \\ud83d\\ude00\"], \"b\": {\"c\": [1, 2]}, "
            "\"1\": \"x\", \"null\": 0, \"2.5\": \"f\", \"false\": \"F\"}");
  JsonDumpsOptions raw;
  raw.ensure_ascii = false;
  EXPECT_EQ(d.JsonDumps(raw),
            "{\"a\": [1, 2.5, null, true, \"h\xc3\xa9llo \xf0\x9f\x98\x80\"], \"b\": {\"c\": [1, 2]}, "
            "\"1\": \"x\", \"null\": 0, \"2.5\": \"f\", \"false\": \"F\"}");
  EXPECT_EQ(d.Repr(),
            "{'a': [1, 2.5, None, True, 'h\xc3\xa9llo \xf0\x9f\x98\x80'], 'b': {'c': (1, 2)}, "
            "1: 'x', None: 0, 2.5: 'f', False: 'F'}");
  absl::StatusOr<std::string> strict = PyJsonDumps(d);
  ASSERT_TRUE(strict.ok());
  EXPECT_EQ(*strict, d.JsonDumps());
}

TEST(PyValueJsonTest, FloatsAndSpecials) {
  PyValue v = PyValue::List({F(1e16), F(1e-5), F(1.5e20), F(0.1), F(5000.0), F(std::nan("")),
                             F(std::numeric_limits<double>::infinity()),
                             F(-std::numeric_limits<double>::infinity()), F(-0.0), I(5000)});
  EXPECT_EQ(v.JsonDumps(),
            "[1e+16, 1e-05, 1.5e+20, 0.1, 5000.0, NaN, Infinity, -Infinity, -0.0, 5000]");
  PyValue keys = PyValue::Dict({{F(std::nan("")), I(1)}, {F(1e16), I(2)}});
  EXPECT_EQ(keys.JsonDumps(), "{\"NaN\": 1, \"1e+16\": 2}");
}

TEST(PyValueJsonTest, StringEscapes) {
  struct Case {
    const char* utf8;
    const char* ascii;  // ensure_ascii=True
    const char* raw;    // ensure_ascii=False
  };
  const Case kCases[] = {
      {"q\"b\\", "\"q\\\"b\\\\\"", "\"q\\\"b\\\\\""},
      {"\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\"", "\"\\n\\r\\t\\b\\f\""},
      {"\x01\x1f", "\"\\u0001\\u001f\"", "\"\\u0001\\u001f\""},
      {"\x7f", "\"\\u007f\"", "\"\x7f\""},
      {"\xc3\xa9", "\"\\u00e9\"", "\"\xc3\xa9\""},
      {"\xe2\x80\xa8", "\"\\u2028\"", "\"\xe2\x80\xa8\""},
      {"\xf0\x9f\x98\x80", "\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""},
      {"'", "\"'\"", "\"'\""},
  };
  JsonDumpsOptions raw;
  raw.ensure_ascii = false;
  for (const Case& c : kCases) {
    EXPECT_EQ(PyValue::Str(c.utf8).JsonDumps(), c.ascii) << c.ascii;
    EXPECT_EQ(PyValue::Str(c.utf8).JsonDumps(raw), c.raw) << c.raw;
  }
}

TEST(PyValueJsonTest, SortKeysAndIndent) {
  PyValue v = PyValue::Dict({
      {S("z"), I(1)},
      {S("a"), PyValue::List({I(1), PyValue::Dict({{S("y"), I(2)}, {S("b"), I(3)}})})},
      {S("m"), PyValue::Dict()},
  });
  JsonDumpsOptions opts;
  opts.sort_keys = true;
  opts.indent = 2;
  EXPECT_EQ(v.JsonDumps(opts),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": 3,\n      \"y\": 2\n    }\n  ],\n"
            "  \"m\": {},\n  \"z\": 1\n}");
  JsonDumpsOptions sorted_only;
  sorted_only.sort_keys = true;
  EXPECT_EQ(v.JsonDumps(sorted_only), "{\"a\": [1, {\"b\": 3, \"y\": 2}], \"m\": {}, \"z\": 1}");

  PyValue w = PyValue::Dict({{S("z"), I(1)}, {S("a"), PyValue::List()}, {S("m"), PyValue::List({I(1)})}});
  JsonDumpsOptions zero;
  zero.indent = 0;
  EXPECT_EQ(w.JsonDumps(zero), "{\n\"z\": 1,\n\"a\": [],\n\"m\": [\n1\n]\n}");
}

TEST(PyValueJsonTest, StrictFailuresMatchPythonTypeErrors) {
  struct Case {
    PyValue value;
    bool sort_keys;
    const char* error;
  };
  const std::vector<Case> kCases = {
      {PyValue::Dict({{PyValue::Tuple({I(1), I(2)}), I(3)}}), false,
       "keys must be str, int, float, bool or None, not tuple"},
      {PyValue::Dict({{I(1), S("a")}, {S("b"), I(2)}}), true,
       "'<' not supported between instances of 'str' and 'int'"},
      {PyValue::Dict({{S("s"), PyValue::Set({I(1), I(2)})}}), false,
       "Object of type set is not JSON serializable"},
  };
  for (const Case& c : kCases) {
    JsonDumpsOptions opts;
    opts.sort_keys = c.sort_keys;
    absl::StatusOr<std::string> got = PyJsonDumps(c.value, opts);
    ASSERT_FALSE(got.ok()) << *got;
    EXPECT_EQ(got.status().message(), c.error);
    // The lenient renderer never fails.
    EXPECT_FALSE(c.value.JsonDumps(opts).empty());
  }
  // Lenient: sets are sorted arrays.
  EXPECT_EQ(PyValue::Set({I(3), I(1), I(2)}).JsonDumps(), "[1, 2, 3]");
  EXPECT_EQ(PyValue::Set({S("b"), S("a")}).JsonDumps(), "[\"a\", \"b\"]");
}

TEST(PyValueFromJsonTest, TypesOrderAndDuplicates) {
  absl::StatusOr<PyValue> v = PyValue::FromJson(
      R"({"a": 1, "b": 1.0, "c": 1e5, "a": 2, "d": [true, null, "\u00e9\ud83d\ude00"], "neg": -5, "z": -0.0})");
  ASSERT_TRUE(v.ok()) << v.status();
  // Python: {'a': 2, 'b': 1.0, 'c': 100000.0, 'd': [True, None, 'é😀'], 'neg': -5, 'z': -0.0}
  EXPECT_EQ(v->Repr(),
            "{'a': 2, 'b': 1.0, 'c': 100000.0, 'd': [True, None, '\xc3\xa9\xf0\x9f\x98\x80'], "
            "'neg': -5, 'z': -0.0}");
  EXPECT_TRUE(v->dict().Find("a")->is_int());
  EXPECT_TRUE(v->dict().Find("b")->is_float());
  EXPECT_TRUE(v->dict().Find("c")->is_float());
}

TEST(PyValueFromJsonTest, ScalarsAndBigIntegers) {
  EXPECT_EQ(PyValue::FromJson("3")->Repr(), "3");
  EXPECT_EQ(PyValue::FromJson("\"x\"")->Repr(), "'x'");
  EXPECT_EQ(PyValue::FromJson("[]")->Repr(), "[]");
  EXPECT_EQ(PyValue::FromJson("9223372036854775807")->Repr(), "9223372036854775807");
  EXPECT_EQ(PyValue::FromJson("-9223372036854775808")->Repr(), "-9223372036854775808");
  // Integers beyond int64 stay exact ints, as in Python (more in big_int_test).
  EXPECT_TRUE(PyValue::FromJson("12345678901234567890")->is_big_int());
  EXPECT_EQ(PyValue::FromJson("12345678901234567890")->Repr(), "12345678901234567890");
}

TEST(PyValueFromJsonTest, ErrorsNamePosition) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "nul", "[1] x", "nan", "-NaN", "1NaN",
                          "NaNa", "[Infinity1]", "+Infinity", "[NaN NaN]"}) {
    absl::StatusOr<PyValue> v = PyValue::FromJson(bad);
    ASSERT_FALSE(v.ok()) << bad;
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(v.status().message(), HasSubstr("JSON")) << bad;
  }
}

// json.loads reads NaN, Infinity and -Infinity (and json.dumps writes them): as values, in
// lists and dicts, among other numbers; inside strings they stay text.
TEST(PyValueFromJsonTest, NonFiniteLiteralsAsJsonLoadsReadsThem) {
  absl::StatusOr<PyValue> v = PyValue::FromJson(
      R"({"a": [1, NaN, 2.5, Infinity, -Infinity, -3], "NaN": "Infinity", "b": -Infinity})");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->Repr(), "{'a': [1, nan, 2.5, inf, -inf, -3], 'NaN': 'Infinity', 'b': -inf}");
  EXPECT_EQ(PyValue::FromJson("NaN")->Repr(), "nan");
  EXPECT_EQ(PyValue::FromJson(" Infinity ")->Repr(), "inf");
  EXPECT_EQ(PyValue::FromJson("[\"\\\"NaN\", NaN]")->Repr(), "['\"NaN', nan]");
  // What PyJsonDumps writes for them parses back (found by fuzz/json_fuzz's smoke run: 1e3808).
  for (const char* text : {"1e3808", "-1e3808", "[NaN]"}) {
    absl::StatusOr<PyValue> value = PyValue::FromJson(text);
    ASSERT_TRUE(value.ok()) << text;
    absl::StatusOr<std::string> dumped = PyJsonDumps(*value);
    ASSERT_TRUE(dumped.ok()) << text;
    absl::StatusOr<PyValue> again = PyValue::FromJson(*dumped);
    ASSERT_TRUE(again.ok()) << *dumped;
    EXPECT_EQ(again->Repr(), value->Repr()) << *dumped;
  }
}

TEST(PyValueFromJsonTest, RoundTripsThroughJsonDumps) {
  const char* kTexts[] = {
      R"({"a": [1, 2.5, null, true, "\u00e9"], "b": {"c": [1e+16, 1e-05]}})",
      R"([{"x": {}}, [], "\ud83d\ude00", -0.0, 0.1])",
  };
  for (const char* text : kTexts) {
    absl::StatusOr<PyValue> v = PyValue::FromJson(text);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->JsonDumps(), text);
  }
}

TEST(PyValueEqualityTest, PythonSemantics) {
  struct Case {
    PyValue a;
    PyValue b;
    bool equal;
  };
  const std::vector<Case> kCases = {
      {I(1), F(1.0), true},
      {I(1), B(true), true},
      {F(1.0), B(true), true},
      {I(0), B(false), true},
      {F(-0.0), I(0), true},
      {I(2), F(2.5), false},
      {F(std::nan("")), F(std::nan("")), false},
      {I(9007199254740993), F(9007199254740992.0), false},  // exact int/float comparison
      {I(9007199254740992), F(9007199254740992.0), true},
      {S("1"), I(1), false},
      {PyValue(), PyValue(), true},
      {PyValue(), I(0), false},
      {PyValue::List({I(1)}), PyValue::Tuple({I(1)}), false},
      {PyValue::List({I(1), F(2.0)}), PyValue::List({B(true), I(2)}), true},
      {PyValue::List({I(1)}), PyValue::List({I(1), I(2)}), false},
      {PyValue::Dict({{S("a"), I(1)}, {S("b"), I(2)}}),
       PyValue::Dict({{S("b"), F(2.0)}, {S("a"), I(1)}}), true},  // order-insensitive
      {PyValue::Dict({{S("a"), I(1)}}), PyValue::Dict({{S("a"), I(2)}}), false},
      {PyValue::Dict({{I(1), S("x")}}), PyValue::Dict({{F(1.0), S("x")}}), true},
      {PyValue::Set({I(1), I(2)}), PyValue::Set({I(2), I(1)}), true},
      {PyValue::Set({I(1)}), PyValue::List({I(1)}), false},
      {PyValue::Set({I(1), I(2)}), PyValue::Set({I(1), I(3)}), false},
  };
  for (const Case& c : kCases) {
    EXPECT_EQ(c.a == c.b, c.equal) << c.a.Repr() << " == " << c.b.Repr();
    EXPECT_EQ(c.b == c.a, c.equal) << c.b.Repr() << " == " << c.a.Repr();
    EXPECT_EQ(c.a != c.b, !c.equal);
  }
}

TEST(PyValueLessTest, PythonOrdering) {
  struct Case {
    PyValue a;
    PyValue b;
    bool less;
  };
  const std::vector<Case> kCases = {
      {I(1), I(2), true},
      {I(2), F(1.5), false},
      {F(1.5), I(2), true},
      {B(false), F(0.5), true},
      {I(9007199254740992), F(9007199254740992.0), false},
      {F(9007199254740992.0), I(9007199254740993), true},
      {S("B"), S("a"), true},
      {S("a"), S("ab"), true},
      {S("\xc3\xa9"), S("z"), false},  // code point order
      {PyValue::List({I(1), I(2)}), PyValue::List({I(1), I(3)}), true},
      {PyValue::List({I(1)}), PyValue::List({I(1), I(0)}), true},
      {PyValue::Tuple({S("a"), I(5)}), PyValue::Tuple({S("a"), I(4)}), false},
      {PyValue::List({I(1)}), PyValue::Tuple({I(2)}), false},  // TypeError in Python
      {S("a"), I(1), false},                                    // TypeError in Python
      {PyValue(), PyValue(), false},
      {PyValue::Set({I(1)}), PyValue::Set({I(1), I(2)}), true},  // proper subset
  };
  for (const Case& c : kCases) {
    EXPECT_EQ(PyValue::Less(c.a, c.b), c.less) << c.a.Repr() << " < " << c.b.Repr();
  }
}

TEST(PyValueTest, TruthyAndTypeName) {
  struct Case {
    PyValue v;
    bool truthy;
    const char* type_name;
  };
  const std::vector<Case> kCases = {
      {PyValue(), false, "NoneType"},  {B(false), false, "bool"},
      {B(true), true, "bool"},         {I(0), false, "int"},
      {I(-3), true, "int"},            {F(0.0), false, "float"},
      {F(-0.0), false, "float"},       {F(std::nan("")), true, "float"},
      {S(""), false, "str"},           {S("0"), true, "str"},
      {PyValue::List(), false, "list"}, {PyValue::List({PyValue()}), true, "list"},
      {PyValue::Tuple(), false, "tuple"}, {PyValue::Dict(), false, "dict"},
      {PyValue::Dict({{S("a"), I(1)}}), true, "dict"}, {PyValue::Set(), false, "set"},
  };
  for (const Case& c : kCases) {
    EXPECT_EQ(c.v.Truthy(), c.truthy) << c.v.Repr();
    EXPECT_EQ(c.v.TypeName(), c.type_name);
  }
}

TEST(PyValueTest, AccessorsAcceptNumericWidening) {
  EXPECT_EQ(B(true).as_int(), 1);
  EXPECT_EQ(B(true).as_float(), 1.0);
  EXPECT_EQ(I(7).as_float(), 7.0);
  EXPECT_FALSE(B(true).is_int());
  EXPECT_TRUE(B(true).is_number());
}

TEST(PyValueDeathTest, WrongAccessorAborts) {
  EXPECT_DEATH((void)S("x").as_int(), "as_int");
  EXPECT_DEATH((void)I(1).dict(), "dict");
}

TEST(PyValueTest, SetDeduplicatesLikePython) {
  PyValue s = PyValue::Set({I(1), F(1.0), B(true), I(2)});
  EXPECT_EQ(s.items().size(), 2u);
  EXPECT_EQ(s.Repr(), "{1, 2}");  // first occurrence kept
}

TEST(PyValueTest, CopyIsDeep) {
  PyValue a = PyValue::Dict({{S("l"), PyValue::List({I(1)})}});
  PyValue b = a;
  b.dict().Find("l")->items().push_back(I(2));
  EXPECT_EQ(a.Repr(), "{'l': [1]}");
  EXPECT_EQ(b.Repr(), "{'l': [1, 2]}");
}

TEST(PyDictTest, PythonKeySemantics) {
  PyDict d;
  d.Set(I(1), S("int"));
  d.Set(F(1.0), S("float"));  // same key: replaces value, keeps key object and position
  d.Set(B(true), S("bool"));
  d.Set(S("a"), I(0));
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(PyValue::Dict(d).Repr(), "{1: 'bool', 'a': 0}");
  EXPECT_TRUE(d.entries()[0].first.is_int());
  EXPECT_TRUE(d.Contains(F(1.0)));
  EXPECT_TRUE(d.Contains("a"));
  EXPECT_FALSE(d.Contains("b"));
  EXPECT_FALSE(d.Contains(S("1")));

  d["b"] = I(5);
  d["a"] = I(9);
  EXPECT_EQ(PyValue::Dict(d).Repr(), "{1: 'bool', 'a': 9, 'b': 5}");
  EXPECT_TRUE(d.Erase("a"));
  EXPECT_FALSE(d.Erase("a"));
  EXPECT_TRUE(d.Erase(B(true)));
  EXPECT_EQ(PyValue::Dict(d).Repr(), "{'b': 5}");
  d.Set("c", PyValue());
  EXPECT_EQ(PyValue::Dict(d).Repr(), "{'b': 5, 'c': None}");
}

// Large dicts use a lazily built index: results must agree with the linear semantics through
// every kind of mutation and copy.
TEST(PyDictTest, LargeDictIndexStaysConsistent) {
  PyDict d;
  const int kN = 3000;
  for (int i = 0; i < kN; ++i) d.Set("k" + std::to_string(i), I(i));
  for (int i = 0; i < kN; ++i) d.Set(I(i), S("int"));
  ASSERT_EQ(d.size(), static_cast<size_t>(2 * kN));
  for (int i = 0; i < kN; i += 97) {
    ASSERT_NE(d.Find("k" + std::to_string(i)), nullptr);
    EXPECT_EQ(d.Find("k" + std::to_string(i))->as_int(), i);
    EXPECT_NE(d.Find(F(static_cast<double>(i))), nullptr);
    EXPECT_NE(d.Find(PyValue::Str("k" + std::to_string(i))), nullptr);
  }
  EXPECT_EQ(d.Find("missing"), nullptr);
  EXPECT_EQ(d.Find(F(0.5)), nullptr);

  // Erase keeps order and lookups right.
  EXPECT_TRUE(d.Erase("k10"));
  EXPECT_EQ(d.Find("k10"), nullptr);
  EXPECT_EQ(d.Find("k11")->as_int(), 11);
  EXPECT_EQ(d.entries()[10].first.as_str(), "k11");

  // Copies (and copies of copies after mutation) are independent and correct.
  PyDict copy = d;
  copy.Set("k11", I(-1));
  copy.Set("new", I(1));
  EXPECT_EQ(d.Find("k11")->as_int(), 11);
  EXPECT_EQ(d.Find("new"), nullptr);
  EXPECT_EQ(copy.Find("k11")->as_int(), -1);
  EXPECT_EQ(copy.Find("new")->as_int(), 1);
  PyDict moved = std::move(copy);
  EXPECT_EQ(moved.Find("new")->as_int(), 1);
  copy = moved;
  EXPECT_EQ(copy.Find("new")->as_int(), 1);

  // mutable_entries() invalidates the index.
  auto& entries = d.mutable_entries();
  std::reverse(entries.begin(), entries.end());
  EXPECT_EQ(d.Find("k0")->as_int(), 0);
  EXPECT_EQ(d.entries().back().first.as_str(), "k0");

  // Equality between big dicts is order-insensitive.
  PyValue a = PyValue::Dict(d);
  std::vector<PyDict::Entry> reversed(d.entries().rbegin(), d.entries().rend());
  PyDict r;
  for (auto& e : reversed) r.Set(e.first, e.second);
  EXPECT_EQ(a, PyValue::Dict(r));
}

TEST(PyDictTest, ConcurrentReadersOfSharedLargeDict) {
  PyDict d;
  for (int i = 0; i < 5000; ++i) d.Set("k" + std::to_string(i), I(i));
  const PyDict& shared = d;
  std::vector<std::thread> threads;
  std::vector<int> found(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        const PyValue* v = shared.Find("k" + std::to_string(i));
        if (v != nullptr && v->as_int() == i) ++found[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int f : found) EXPECT_EQ(f, 5000);
}

// Sandboxes render depth-limited trees thousands of levels deep (GorillaFileSystem state); the
// recursive renderers must cope.
TEST(PyValueTest, DeepNestingRendersAndCompares) {
  const int kLevels = 3000;
  PyValue v = I(1);
  for (int i = 0; i < kLevels; ++i) v = PyValue::Dict({{S("c"), PyValue::List({std::move(v)})}});
  const size_t expected_size = 1 + static_cast<size_t>(kLevels) * (std::string("{'c': []}").size());
  EXPECT_EQ(v.Repr().size(), expected_size);
  EXPECT_EQ(v.JsonDumps().size(), expected_size);
  absl::StatusOr<std::string> strict = PyJsonDumps(v);
  ASSERT_TRUE(strict.ok());
  EXPECT_EQ(strict->size(), expected_size);
  PyValue copy = v;
  EXPECT_EQ(copy, v);
}

TEST(PyRoundTest, MatchesCPython) {
  struct Case {
    double x;
    int ndigits;
    const char* repr;
  };
  const Case kCases[] = {
      {2.675, 2, "2.67"},      {0.125, 2, "0.12"},    {0.375, 2, "0.38"},
      {150.0, -2, "200.0"},    {250.0, -2, "200.0"},  {149.5, -2, "100.0"},
      {-0.4, 0, "-0.0"},       {-2.5, 0, "-2.0"},     {0.5, 0, "0.0"},
      {1.5, 0, "2.0"},         {1234.5678, -1, "1230.0"}, {5e-324, 2, "0.0"},
      {1234.5678, 2, "1234.57"}, {-1234.5678, 1, "-1234.6"}, {1e300, -300, "1e+300"},
      {0.1 + 0.2, 10, "0.3"},  {123.456, 400, "123.456"}, {5.0, -400, "0.0"},
  };
  for (const Case& c : kCases) {
    EXPECT_EQ(PyFloatRepr(PyRound(c.x, c.ndigits)), c.repr)
        << "round(" << PyFloatRepr(c.x) << ", " << c.ndigits << ")";
  }
}

}  // namespace
}  // namespace envtune

namespace envtune {
namespace {

// A model reply can nest JSON arbitrarily deep in 200 KB; 100k levels overflowed the stack (the
// env server segfaulted). Deeper than 1000 levels is now an error, as json.loads raises
// RecursionError; 1000 levels still parse.
TEST(PyValueFromJsonTest, NestingDeeperThanTheLimitIsAnErrorNotACrash) {
  for (const char* open : {"[", "{\"a\":"}) {
    const bool array = open[0] == '[';
    auto nested = [&](size_t depth) {
      std::string s;
      for (size_t i = 0; i < depth; ++i) s += open;
      s += "0";
      s += std::string(depth, array ? ']' : '}');
      return s;
    };
    absl::StatusOr<PyValue> ok = PyValue::FromJson(nested(1000));
    EXPECT_TRUE(ok.ok()) << ok.status();
    for (size_t depth : {1001u, 100000u, 1000000u}) {
      absl::StatusOr<PyValue> deep = PyValue::FromJson(nested(depth));
      ASSERT_FALSE(deep.ok()) << depth;
      EXPECT_EQ(deep.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(deep.status().message(), testing::HasSubstr("nested deeper than 1000 levels"));
    }
    // Unterminated, as a truncated reply would be.
    EXPECT_FALSE(PyValue::FromJson(std::string(1000000, open[0])).ok());
  }
}

}  // namespace
}  // namespace envtune
