//! A small JSON Schema (draft 2020-12) validator for exactly the subset that
//! [`super::result::schema`] generates from Orca's own types.
//!
//! The schema is compiled once into a tree of `Node`s. Compiling refuses every keyword it
//! does not understand (see [`SUPPORTED`] and [`ANNOTATIONS`]), so a change of the result
//! types that makes schemars emit something new fails the unit tests instead of being
//! silently ignored at run time.
//!
//! Supported: `type` (a name or a list of names), `enum`, `const`, `format` (`date-time`
//! per RFC 3339, the integer formats `int8` ... `uint64` by range, `double` and `float`
//! as any number), `minimum`, `maximum`, `properties`, `required`,
//! `additionalProperties` (a boolean), `items` (one schema), `anyOf`, `$ref` to
//! `#/$defs/<name>` and `$defs` at the root. Annotations (`$schema`, `title`,
//! `description`, `default`, ...) are accepted and ignored.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// Keywords that constrain the instance; all of them are checked.
pub const SUPPORTED: &[&str] = &[
    "type",
    "enum",
    "const",
    "format",
    "minimum",
    "maximum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "anyOf",
    "$ref",
    "$defs",
];

/// Keywords that only annotate; accepted anywhere and ignored.
pub const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Deepest nesting of schemas (one level per `$ref`, property, item or `anyOf` branch)
/// that validation follows; deeper means a reference cycle that never reaches a leaf.
const MAX_DEPTH: u32 = 512;

/// Why a schema cannot be compiled: where in the schema (a JSON pointer) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {at:?} in the schema: {message}")]
pub struct SchemaError {
    pub at: String,
    pub message: String,
}

/// One place where an instance breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// JSON pointer of the instance location.
    pub pointer: String,
    /// The keyword that failed.
    pub keyword: &'static str,
    /// What is wrong, e.g. `"status" is a required property`.
    pub message: String,
}

/// A compiled schema.
#[derive(Debug)]
pub struct Checker {
    root: Node,
    defs: Vec<Node>,
}

/// In the order messages list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum JsonType {
    Null,
    Boolean,
    Integer,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    fn parse(name: &str) -> Option<JsonType> {
        Some(match name {
            "null" => JsonType::Null,
            "boolean" => JsonType::Boolean,
            "object" => JsonType::Object,
            "array" => JsonType::Array,
            "number" => JsonType::Number,
            "string" => JsonType::String,
            "integer" => JsonType::Integer,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Boolean => "boolean",
            JsonType::Object => "object",
            JsonType::Array => "array",
            JsonType::Number => "number",
            JsonType::String => "string",
            JsonType::Integer => "integer",
        }
    }

    fn matches(self, v: &Value) -> bool {
        match (self, v) {
            (JsonType::Null, Value::Null)
            | (JsonType::Boolean, Value::Bool(_))
            | (JsonType::Object, Value::Object(_))
            | (JsonType::Array, Value::Array(_))
            | (JsonType::Number, Value::Number(_))
            | (JsonType::String, Value::String(_)) => true,
            (JsonType::Integer, Value::Number(n)) => is_integral(n),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    DateTime,
    /// An integer format: the inclusive range a value must lie in.
    Int {
        name: &'static str,
        min: i128,
        max: i128,
    },
    /// `double` / `float`: any JSON number is one.
    AnyNumber,
}

impl Format {
    fn parse(name: &str) -> Option<Format> {
        let int = |name: &'static str, min: i128, max: i128| Format::Int { name, min, max };
        Some(match name {
            "date-time" => Format::DateTime,
            "int8" => int("int8", i8::MIN.into(), i8::MAX.into()),
            "int16" => int("int16", i16::MIN.into(), i16::MAX.into()),
            "int32" => int("int32", i32::MIN.into(), i32::MAX.into()),
            "int64" => int("int64", i64::MIN.into(), i64::MAX.into()),
            "uint8" => int("uint8", 0, u8::MAX.into()),
            "uint16" => int("uint16", 0, u16::MAX.into()),
            "uint32" => int("uint32", 0, u32::MAX.into()),
            "uint64" => int("uint64", 0, u64::MAX.into()),
            "double" | "float" => Format::AnyNumber,
            _ => return None,
        })
    }
}

/// One compiled (sub)schema. Every keyword present applies (draft 2020-12 lets `$ref` sit
/// beside other keywords).
#[derive(Debug, Default)]
struct Node {
    types: Option<Vec<JsonType>>,
    enumeration: Option<Vec<Value>>,
    constant: Option<Value>,
    format: Option<Format>,
    minimum: Option<Number>,
    maximum: Option<Number>,
    /// Sorted by name.
    properties: Vec<(String, Node)>,
    required: Vec<String>,
    /// For each required name, the index of the property of that name, if any.
    required_at: Vec<Option<usize>>,
    /// `additionalProperties: false`.
    closed: bool,
    items: Option<Box<Node>>,
    any_of: Vec<Node>,
    /// Index into [`Checker::defs`].
    reference: Option<usize>,
}

fn schema_error(at: &str, message: impl Into<String>) -> SchemaError {
    SchemaError {
        at: at.to_owned(),
        message: message.into(),
    }
}

fn escape_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn unescape_segment(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

struct Compiler<'s> {
    /// `$defs` names, sorted, with their index into the compiled definitions.
    names: Vec<&'s str>,
}

impl Compiler<'_> {
    fn def_index(&self, name: &str) -> Option<usize> {
        self.names.binary_search(&name).ok()
    }

    fn node(&self, schema: &Value, at: &str, root: bool) -> Result<Node, SchemaError> {
        let Value::Object(map) = schema else {
            return Err(schema_error(
                at,
                format!("a schema must be an object here, not {schema}"),
            ));
        };
        let mut node = Node::default();
        for (keyword, value) in map {
            let here = format!("{at}/{}", escape_segment(keyword));
            match keyword.as_str() {
                "type" => node.types = Some(compile_types(value, &here)?),
                "enum" => match value {
                    Value::Array(options) if !options.is_empty() => {
                        node.enumeration = Some(options.clone());
                    }
                    _ => return Err(schema_error(&here, "`enum` must be a non-empty array")),
                },
                "const" => node.constant = Some(value.clone()),
                "format" => {
                    let name = value
                        .as_str()
                        .ok_or_else(|| schema_error(&here, "`format` must be a string"))?;
                    node.format = Some(Format::parse(name).ok_or_else(|| {
                        schema_error(&here, format!("format {name:?} is not supported"))
                    })?);
                }
                "minimum" | "maximum" => {
                    let Value::Number(n) = value else {
                        return Err(schema_error(&here, format!("`{keyword}` must be a number")));
                    };
                    if keyword == "minimum" {
                        node.minimum = Some(n.clone());
                    } else {
                        node.maximum = Some(n.clone());
                    }
                }
                "properties" => {
                    let Value::Object(props) = value else {
                        return Err(schema_error(&here, "`properties` must be an object"));
                    };
                    for (name, sub) in props {
                        let sub_at = format!("{here}/{}", escape_segment(name));
                        node.properties
                            .push((name.clone(), self.node(sub, &sub_at, false)?));
                    }
                    node.properties.sort_by(|a, b| a.0.cmp(&b.0));
                }
                "required" => {
                    let names = value.as_array().and_then(|a| {
                        a.iter()
                            .map(|n| n.as_str().map(str::to_owned))
                            .collect::<Option<Vec<String>>>()
                    });
                    node.required = names.ok_or_else(|| {
                        schema_error(&here, "`required` must be an array of strings")
                    })?;
                }
                "additionalProperties" => match value {
                    Value::Bool(allowed) => node.closed = !allowed,
                    _ => {
                        return Err(schema_error(
                            &here,
                            "only `additionalProperties: true|false` is supported",
                        ))
                    }
                },
                "items" => node.items = Some(Box::new(self.node(value, &here, false)?)),
                "anyOf" => {
                    let Value::Array(branches) = value else {
                        return Err(schema_error(&here, "`anyOf` must be an array"));
                    };
                    if branches.is_empty() {
                        return Err(schema_error(&here, "`anyOf` must not be empty"));
                    }
                    for (i, b) in branches.iter().enumerate() {
                        node.any_of
                            .push(self.node(b, &format!("{here}/{i}"), false)?);
                    }
                }
                "$ref" => {
                    let target = value
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/$defs/"))
                        .filter(|name| !name.contains('/') && !name.contains('%'))
                        .map(unescape_segment)
                        .and_then(|name| self.def_index(&name));
                    node.reference = Some(target.ok_or_else(|| {
                        schema_error(
                            &here,
                            format!(
                                "`$ref` {value} is not a reference to one of the root's `$defs`"
                            ),
                        )
                    })?);
                }
                // Compiled by `Checker::compile`.
                "$defs" if root => {}
                "$defs" => {
                    return Err(schema_error(&here, "`$defs` is supported only at the root"))
                }
                k if ANNOTATIONS.contains(&k) => {}
                k => {
                    return Err(schema_error(
                        &here,
                        format!("keyword {k:?} is not supported by Orca's result validator"),
                    ))
                }
            }
        }
        node.required_at = node
            .required
            .iter()
            .map(|r| {
                node.properties
                    .binary_search_by(|(p, _)| p.as_str().cmp(r))
                    .ok()
            })
            .collect();
        Ok(node)
    }
}

fn compile_types(value: &Value, at: &str) -> Result<Vec<JsonType>, SchemaError> {
    let names: Vec<&Value> = match value {
        Value::String(_) => vec![value],
        Value::Array(list) if !list.is_empty() => list.iter().collect(),
        _ => {
            return Err(schema_error(
                at,
                "`type` must be a type name or a non-empty array of them",
            ))
        }
    };
    let mut types = Vec::with_capacity(names.len());
    for n in names {
        let t = n
            .as_str()
            .and_then(JsonType::parse)
            .ok_or_else(|| schema_error(at, format!("{n} is not a JSON Schema type")))?;
        if types.contains(&t) {
            return Err(schema_error(at, format!("type {n} is listed twice")));
        }
        types.push(t);
    }
    types.sort();
    Ok(types)
}

impl Checker {
    /// Compiles `schema`, refusing anything outside the supported subset.
    pub fn compile(schema: &Value) -> Result<Checker, SchemaError> {
        let empty = Map::new();
        let defs_map = match schema.get("$defs") {
            None => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return Err(schema_error("/$defs", "`$defs` must be an object")),
        };
        // A `Map` iterates in key order when serde_json keeps keys sorted, but not with
        // `preserve_order`; sort so that `def_index` can search.
        let mut entries: Vec<(&str, &Value)> =
            defs_map.iter().map(|(k, v)| (k.as_str(), v)).collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let compiler = Compiler {
            names: entries.iter().map(|(k, _)| *k).collect(),
        };
        let defs = entries
            .iter()
            .map(|(name, s)| compiler.node(s, &format!("/$defs/{}", escape_segment(name)), false))
            .collect::<Result<Vec<Node>, SchemaError>>()?;
        let root = compiler.node(schema, "", true)?;
        Ok(Checker { root, defs })
    }

    /// Every place where `instance` breaks the schema; empty when it is valid.
    pub fn validate(&self, instance: &Value) -> Vec<Failure> {
        let mut walk = Walk {
            checker: self,
            path: Vec::new(),
            out: Vec::new(),
            probing: false,
            probe_failures: 0,
        };
        walk.node(&self.root, instance, 0);
        walk.out
    }
}

#[derive(Clone, Copy)]
enum Seg<'v> {
    Key(&'v str),
    Index(usize),
}

struct Walk<'c, 'v> {
    checker: &'c Checker,
    path: Vec<Seg<'v>>,
    out: Vec<Failure>,
    /// Probing `anyOf` branches: a failure is only counted, its message not written (a
    /// valid result's `null`s fail one branch each, and the messages cost more than the
    /// rest of the check).
    probing: bool,
    probe_failures: usize,
}

impl<'v> Walk<'_, 'v> {
    fn pointer(&self) -> String {
        let mut p = String::new();
        for seg in &self.path {
            p.push('/');
            match seg {
                Seg::Key(k) => p.push_str(&escape_segment(k)),
                Seg::Index(i) => {
                    let _ = write!(p, "{i}");
                }
            }
        }
        p
    }

    fn fail(&mut self, keyword: &'static str, message: impl FnOnce() -> String) {
        if self.probing {
            self.probe_failures += 1;
            return;
        }
        let pointer = self.pointer();
        self.out.push(Failure {
            pointer,
            keyword,
            message: message(),
        });
    }

    fn node(&mut self, n: &Node, v: &'v Value, depth: u32) {
        if depth > MAX_DEPTH {
            self.fail("$ref", || {
                "the schema nests too deeply here (a `$ref` cycle?); this is a bug in Orca"
                    .to_owned()
            });
            return;
        }
        // The order of `jsonschema`, which this validator replaced (the agreement tests
        // compare the two): `type`, then the object keywords, then the others.
        if let Some(types) = &n.types {
            if !types.iter().any(|t| t.matches(v)) {
                self.fail("type", || type_message(v, types));
            }
        }
        if let Value::Object(map) = v {
            self.object(n, map, depth);
        }
        if let Some(target) = n.reference {
            if let Some(def) = self.checker.defs.get(target) {
                self.node(def, v, depth + 1);
            }
        }
        if !n.any_of.is_empty() {
            self.any_of(&n.any_of, v, depth);
        }
        if let Some(c) = &n.constant {
            if !json_equal(c, v) {
                self.fail("const", || format!("{c} was expected"));
            }
        }
        if let Some(options) = &n.enumeration {
            if !options.iter().any(|o| json_equal(o, v)) {
                self.fail("enum", || enum_message(v, options));
            }
        }
        if let Some(f) = n.format {
            self.format(f, n, v);
        }
        if let (Some(items), Value::Array(list)) = (&n.items, v) {
            for (i, item) in list.iter().enumerate() {
                self.path.push(Seg::Index(i));
                self.node(items, item, depth + 1);
                self.path.pop();
            }
        }
        if let Value::Number(x) = v {
            if let Some(max) = &n.maximum {
                if num_cmp(x, max) == Ordering::Greater {
                    self.fail("maximum", || {
                        format!("{x} is greater than the maximum of {max}")
                    });
                }
            }
            if let Some(min) = &n.minimum {
                if num_cmp(x, min) == Ordering::Less {
                    self.fail("minimum", || {
                        format!("{x} is less than the minimum of {min}")
                    });
                }
            }
        }
    }

    /// `required`, `properties`, `additionalProperties`.
    fn object(&mut self, n: &Node, map: &'v Map<String, Value>, depth: u32) {
        match match_properties(n, map) {
            Some(matched) => self.object_matched(n, map, &matched, depth),
            None => self.object_by_lookup(n, map, depth),
        }
    }

    /// [`Walk::object`] given what [`match_properties`] found, failures in the same order.
    fn object_matched(
        &mut self,
        n: &Node,
        map: &'v Map<String, Value>,
        m: &Matched<'v>,
        depth: u32,
    ) {
        for (name, at) in n.required.iter().zip(&n.required_at) {
            let present = match at {
                Some(i) => m.values[*i].is_some(),
                None => map.contains_key(name),
            };
            if !present {
                self.fail("required", || {
                    format!("{} is a required property", Value::String(name.clone()))
                });
            }
        }
        for ((_, sub), found) in n.properties.iter().zip(&m.values) {
            if let Some((key, value)) = found {
                self.path.push(Seg::Key(key));
                self.node(sub, value, depth + 1);
                self.path.pop();
            }
        }
        if n.closed && m.unexpected {
            self.additional_properties(n, map);
        }
    }

    /// [`Walk::object`] by looking each name up (a map whose keys are not in order).
    fn object_by_lookup(&mut self, n: &Node, map: &'v Map<String, Value>, depth: u32) {
        for name in &n.required {
            if !map.contains_key(name) {
                self.fail("required", || {
                    format!("{} is a required property", Value::String(name.clone()))
                });
            }
        }
        for (name, sub) in &n.properties {
            if let Some((key, value)) = map.get_key_value(name) {
                self.path.push(Seg::Key(key));
                self.node(sub, value, depth + 1);
                self.path.pop();
            }
        }
        if n.closed {
            self.additional_properties(n, map);
        }
    }

    fn additional_properties(&mut self, n: &Node, map: &Map<String, Value>) {
        let unexpected: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| {
                n.properties
                    .binary_search_by(|(name, _)| name.as_str().cmp(k))
                    .is_err()
            })
            .collect();
        if unexpected.is_empty() {
            return;
        }
        let list = unexpected
            .iter()
            .map(|k| format!("'{k}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let verb = if unexpected.len() == 1 { "was" } else { "were" };
        self.fail("additionalProperties", || {
            format!("Additional properties are not allowed ({list} {verb} unexpected)")
        });
    }

    /// Valid when one branch is. Otherwise, when all branches but one fail only because of
    /// the type of the value itself (the `null` of a nullable sub-object), the failures of
    /// that one branch are the useful ones, with their precise pointers; else one failure
    /// for the whole `anyOf`.
    fn any_of(&mut self, branches: &[Node], v: &'v Value, depth: u32) {
        // First only whether a branch holds, without messages: the usual answer.
        let (was_probing, failures_before) = (self.probing, self.probe_failures);
        self.probing = true;
        let any_valid = branches.iter().any(|b| {
            let before = self.probe_failures;
            self.node(b, v, depth + 1);
            self.probe_failures == before
        });
        self.probing = was_probing;
        self.probe_failures = failures_before;
        if any_valid {
            return;
        }
        if self.probing {
            self.probe_failures += 1;
            return;
        }
        // None holds: walk them again for their failures.
        let saved = std::mem::take(&mut self.out);
        let mut failed: Vec<Vec<Failure>> = Vec::with_capacity(branches.len());
        for b in branches {
            self.node(b, v, depth + 1);
            failed.push(std::mem::take(&mut self.out));
        }
        self.out = saved;
        let here = self.pointer();
        let mut real = failed
            .into_iter()
            .filter(|f| !(f.len() == 1 && f[0].keyword == "type" && f[0].pointer == here));
        match (real.next(), real.next()) {
            (Some(only), None) => self.out.extend(only),
            _ => self.fail("anyOf", || {
                format!("{v} is not valid under any of the schemas listed in the 'anyOf' keyword")
            }),
        }
    }

    fn format(&mut self, f: Format, n: &Node, v: &Value) {
        match (f, v) {
            (Format::DateTime, Value::String(s)) if !is_date_time(s) => {
                self.fail("format", || format!("{v} is not a \"date-time\""));
            }
            (Format::Int { name, min, max }, Value::Number(x)) => {
                // A non-integer is the business of `type`, and a value that `minimum` or
                // `maximum` refuses is said so once, by them; only the range is left here.
                let bounded = n.minimum.as_ref().is_some_and(|m| num_cmp(x, m).is_lt())
                    || n.maximum.as_ref().is_some_and(|m| num_cmp(x, m).is_gt());
                let out_of_range = !bounded
                    && match to_num(x) {
                        Num::Int(i) => i < min || i > max,
                        Num::Float(x) => {
                            x.fract() == 0.0
                                && (cmp_float_int(x, min) == Ordering::Less
                                    || cmp_float_int(x, max) == Ordering::Greater)
                        }
                    };
                if out_of_range {
                    self.fail("format", || {
                        format!("{v} is not a \"{name}\" (an integer from {min} to {max})")
                    });
                }
            }
            _ => {}
        }
    }
}

/// An object's members matched to a schema's properties in one pass.
struct Matched<'v> {
    /// The member for each property of the node, by the property's index.
    values: Vec<Option<(&'v String, &'v Value)>>,
    /// A member no property names.
    unexpected: bool,
}

/// Walks the object's members and the node's properties together, both sorted by name (a
/// `serde_json` map keeps its keys in order): one comparison per step instead of a lookup
/// per property, per required name and per member. None when the map's keys turn out not
/// to be in order (a map that keeps insertion order), for the caller to look names up.
fn match_properties<'v>(n: &Node, map: &'v Map<String, Value>) -> Option<Matched<'v>> {
    let mut m = Matched {
        values: vec![None; n.properties.len()],
        unexpected: false,
    };
    let mut props = n.properties.iter().enumerate().peekable();
    let mut last: Option<&str> = None;
    for (key, value) in map {
        if last.is_some_and(|l| l >= key.as_str()) {
            return None;
        }
        last = Some(key);
        loop {
            match props.peek() {
                Some((_, (name, _))) if name.as_str() < key.as_str() => {
                    props.next();
                }
                Some((i, (name, _))) if name == key => {
                    m.values[*i] = Some((key, value));
                    props.next();
                    break;
                }
                _ => {
                    m.unexpected = true;
                    break;
                }
            }
        }
    }
    Some(m)
}

fn type_message(v: &Value, types: &[JsonType]) -> String {
    match types {
        [one] => format!("{v} is not of type \"{}\"", one.name()),
        _ => {
            let list = types
                .iter()
                .map(|t| format!("\"{}\"", t.name()))
                .collect::<Vec<_>>()
                .join(", ");
            format!("{v} is not of types {list}")
        }
    }
}

/// `"x" is not one of "a", "b" or "c"`: every option is listed, so the message says what
/// would have been right.
fn enum_message(v: &Value, options: &[Value]) -> String {
    let mut m = format!("{v} is not one of ");
    for (i, o) in options.iter().enumerate() {
        if i == 0 {
        } else if i + 1 == options.len() {
            m.push_str(" or ");
        } else {
            m.push_str(", ");
        }
        let _ = write!(m, "{o}");
    }
    m
}

/// A JSON number, exactly: integers widened, others as `f64`.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

fn to_num(n: &Number) -> Num {
    if let Some(u) = n.as_u64() {
        Num::Int(u.into())
    } else if let Some(i) = n.as_i64() {
        Num::Int(i.into())
    } else {
        Num::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Compares a float with an integer without losing precision on either side.
fn cmp_float_int(x: f64, i: i128) -> Ordering {
    // 2^127: every float at or past it is beyond any i128, and below it `trunc` fits.
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if x.is_nan() {
        return Ordering::Equal;
    }
    if x >= LIMIT {
        return Ordering::Greater;
    }
    if x < -LIMIT {
        return Ordering::Less;
    }
    let t = x.trunc();
    // In range, so the cast is exact.
    match (t as i128).cmp(&i) {
        Ordering::Equal => x.partial_cmp(&t).unwrap_or(Ordering::Equal),
        o => o,
    }
}

fn num_cmp(a: &Number, b: &Number) -> Ordering {
    match (to_num(a), to_num(b)) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Num::Float(x), Num::Int(y)) => cmp_float_int(x, y),
        (Num::Int(x), Num::Float(y)) => cmp_float_int(y, x).reverse(),
    }
}

/// Whether a number is an integer in the JSON Schema sense (`1.0` is one).
fn is_integral(n: &Number) -> bool {
    match to_num(n) {
        Num::Int(_) => true,
        Num::Float(x) => x.is_finite() && x.fract() == 0.0,
    }
}

/// JSON equality, with numbers compared by value (`1` equals `1.0`).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => num_cmp(x, y) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| json_equal(p, q)))
        }
        _ => a == b,
    }
}

/// `n` ASCII digits as a number, or `None` when one of them is not a digit.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// An RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`, `T` and `Z` in
/// either case, a real calendar day, and second 60 only where it is 23:59:60 in UTC (a
/// leap second).
pub fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    // "YYYY-MM-DDTHH:MM:SSZ" is the shortest.
    if b.len() < 20 {
        return false;
    }
    let field = |from: usize, to: usize| digits(&b[from..to]);
    let (Some(year), Some(month), Some(day)) = (field(0, 4), field(5, 7), field(8, 10)) else {
        return false;
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return false;
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return false;
    }
    let (Some(hour), Some(minute), Some(second)) = (field(11, 13), field(14, 16), field(17, 19))
    else {
        return false;
    };
    if b[13] != b':' || b[16] != b':' || hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    // Minutes east of UTC.
    let offset: i64 = match b.get(i..) {
        Some([b'Z' | b'z']) => 0,
        Some([sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]) => {
            let (Some(oh), Some(om)) = (digits(&[*h1, *h2]), digits(&[*m1, *m2])) else {
                return false;
            };
            if oh > 23 || om > 59 {
                return false;
            }
            let east = i64::from(oh * 60 + om);
            if *sign == b'-' {
                -east
            } else {
                east
            }
        }
        _ => return false,
    };
    if second == 60 {
        let utc = (i64::from(hour * 60 + minute) - offset).rem_euclid(24 * 60);
        return utc == 23 * 60 + 59;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every key of every schema object in `schema` (not the names under `properties` or
    /// `$defs`, which are not keywords), with where it is.
    fn keywords(schema: &Value, at: &str, out: &mut Vec<(String, String)>) {
        let Value::Object(map) = schema else { return };
        for (k, v) in map {
            out.push((k.clone(), at.to_owned()));
            let here = format!("{at}/{k}");
            match k.as_str() {
                "properties" | "$defs" => {
                    if let Value::Object(subs) = v {
                        for (name, sub) in subs {
                            keywords(sub, &format!("{here}/{name}"), out);
                        }
                    }
                }
                "items" => keywords(v, &here, out),
                "anyOf" | "oneOf" | "allOf" | "prefixItems" => {
                    for (i, sub) in v.as_array().into_iter().flatten().enumerate() {
                        keywords(sub, &format!("{here}/{i}"), out);
                    }
                }
                _ => {}
            }
        }
    }

    /// The guard against the result types outgrowing this validator: every keyword that
    /// the generated schema uses is one this module checks (or a mere annotation), and
    /// the schema compiles.
    #[test]
    fn every_keyword_of_the_result_schema_is_supported() {
        let schema = crate::artifacts::result::schema();
        let mut found = Vec::new();
        keywords(&schema, "", &mut found);
        assert!(found.len() > 100, "{found:?}");
        for (k, at) in &found {
            assert!(
                SUPPORTED.contains(&k.as_str()) || ANNOTATIONS.contains(&k.as_str()),
                "keyword {k:?} at {at:?} of the result schema is not supported by schema_check"
            );
        }
        // Every format it uses is one we check.
        let text = schema.to_string();
        for f in ["date-time", "uint32", "uint64", "int32", "double"] {
            assert!(text.contains(&format!("\"format\":\"{f}\"")), "{f}");
        }
        if let Err(e) = Checker::compile(&schema) {
            panic!("the result schema does not compile: {e}");
        }
    }

    #[test]
    fn unsupported_keywords_and_forms_are_refused() {
        for (schema, at) in [
            (json!({"pattern": "^a"}), "/pattern"),
            (
                json!({"properties": {"a": {"minLength": 1}}}),
                "/properties/a/minLength",
            ),
            (json!({"oneOf": [{"type": "null"}]}), "/oneOf"),
            (json!({"allOf": [{"type": "null"}]}), "/allOf"),
            (json!({"items": [{"type": "null"}]}), "/items"),
            (
                json!({"additionalProperties": {"type": "string"}}),
                "/additionalProperties",
            ),
            (json!({"format": "email"}), "/format"),
            (json!({"type": "float"}), "/type"),
            (json!({"type": ["string", "string"]}), "/type"),
            (json!({"$ref": "#/$defs/Missing"}), "/$ref"),
            (
                json!({"$ref": "other.json#/$defs/A", "$defs": {"A": {}}}),
                "/$ref",
            ),
            (json!({"anyOf": [true]}), "/anyOf/0"),
            (json!({"$defs": {"A": {"$defs": {}}}}), "/$defs/A/$defs"),
            (json!({"enum": []}), "/enum"),
        ] {
            match Checker::compile(&schema) {
                Err(e) => assert_eq!(e.at, at, "{schema}: {e}"),
                Ok(_) => panic!("{schema} compiled"),
            }
        }
    }

    fn check(schema: Value, v: Value) -> Vec<(String, &'static str, String)> {
        Checker::compile(&schema)
            .unwrap()
            .validate(&v)
            .into_iter()
            .map(|f| (f.pointer, f.keyword, f.message))
            .collect()
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let s = json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "a/b": {"type": "integer", "minimum": 0, "format": "uint32"},
                "e": {"enum": ["x", "y", "z", "w"]},
                "c": {"const": 1},
                "t": {"type": ["string", "null"], "format": "date-time"},
                "l": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["a/b", "e", "c", "t", "l", "m"]
        });
        let got = check(
            s,
            json!({"a/b": -1.5, "e": "v", "c": 2, "t": "soon", "l": ["x", 3], "q": 1, "r": 2}),
        );
        assert_eq!(
            got,
            vec![
                ("".into(), "required", "\"m\" is a required property".into()),
                (
                    "/a~1b".into(),
                    "type",
                    "-1.5 is not of type \"integer\"".into()
                ),
                (
                    "/a~1b".into(),
                    "minimum",
                    "-1.5 is less than the minimum of 0".into()
                ),
                ("/c".into(), "const", "1 was expected".into()),
                (
                    "/e".into(),
                    "enum",
                    "\"v\" is not one of \"x\", \"y\", \"z\" or \"w\"".into()
                ),
                ("/l/1".into(), "type", "3 is not of type \"string\"".into()),
                (
                    "/t".into(),
                    "format",
                    "\"soon\" is not a \"date-time\"".into()
                ),
                (
                    "".into(),
                    "additionalProperties",
                    "Additional properties are not allowed ('q', 'r' were unexpected)".into()
                ),
            ]
        );
        assert_eq!(
            check(json!({"type": ["string", "null"]}), json!(5)),
            vec![(
                "".into(),
                "type",
                "5 is not of types \"null\", \"string\"".into()
            )]
        );
        assert_eq!(
            check(json!({"format": "uint32"}), json!(4_294_967_296u64)),
            vec![(
                "".into(),
                "format",
                "4294967296 is not a \"uint32\" (an integer from 0 to 4294967295)".into()
            )]
        );
    }

    #[test]
    fn numbers_compare_by_value() {
        let s =
            json!({"type": "integer", "const": 1, "minimum": 1, "maximum": 1, "format": "uint32"});
        assert!(check(s.clone(), json!(1)).is_empty());
        assert!(check(s.clone(), json!(1.0)).is_empty());
        assert_eq!(check(s.clone(), json!(1.5)).len(), 3);
        let u = json!({"format": "uint64", "minimum": 0});
        assert!(check(u.clone(), json!(u64::MAX)).is_empty());
        // Said once, by `minimum`, not again by the format.
        let below = check(u.clone(), json!(-1));
        assert_eq!(below.len(), 1);
        assert_eq!(below[0].1, "minimum");
        assert_eq!(check(json!({"format": "uint64"}), json!(-1))[0].1, "format");
        assert_eq!(check(u.clone(), json!(1e20))[0].1, "format");
        assert!(
            check(u.clone(), json!(1.5)).is_empty(),
            "not an integer: type's business"
        );
        let i = json!({"format": "int32"});
        assert!(check(i.clone(), json!(i32::MIN)).is_empty());
        assert_eq!(check(i.clone(), json!(i64::from(i32::MIN) - 1)).len(), 1);
        assert_eq!(check(i, json!(2_147_483_648.0)).len(), 1);
        assert_eq!(cmp_float_int(-0.5, 0), Ordering::Less);
        assert_eq!(cmp_float_int(-0.0, 0), Ordering::Equal);
        assert_eq!(
            cmp_float_int(9.007_199_254_740_993e15, 9_007_199_254_740_992),
            Ordering::Equal
        );
        assert_eq!(cmp_float_int(1e40, i128::MAX), Ordering::Greater);
        assert_eq!(cmp_float_int(-1e40, i128::MIN), Ordering::Less);
    }

    #[test]
    fn date_times() {
        for ok in [
            "2026-11-25T10:30:00.000Z",
            "2026-11-25t10:30:00z",
            "1970-01-01T00:00:00+00:00",
            "2024-02-29T23:59:59.123456789-23:59",
            "1998-12-31T23:59:60Z",
            "1998-12-31T15:59:60-08:00",
            "1999-01-01T00:29:60+00:30",
            "0000-01-01T00:00:00Z",
        ] {
            assert!(is_date_time(ok), "{ok}");
        }
        for bad in [
            "",
            "yesterday",
            "2026-11-25",
            "2026-11-25 10:30:00Z",
            "2026-11-25T10:30:00",
            "2026-11-25T10:30Z",
            "2026-11-25T10:30:00.Z",
            "2026-11-25T10:30:00ZZ",
            "2026-11-25T10:30:00+0100",
            "2026-11-25T10:30:00+24:00",
            "2026-11-25T10:30:00+01:60",
            "2026-13-25T10:30:00Z",
            "2026-00-25T10:30:00Z",
            "2026-11-00T10:30:00Z",
            "2026-11-31T10:30:00Z",
            "2023-02-29T10:30:00Z",
            "1900-02-29T10:30:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T10:60:00Z",
            "2026-11-25T10:30:61Z",
            "2026-11-25T10:30:60Z",
            "1998-12-31T23:59:60+01:00",
            "+2026-11-25T10:30:00Z",
            "2026-11-25T1٠:30:00Z",
            "２026-11-25T10:30:00Z",
            "2026-11-25T10:30:00.5é",
        ] {
            assert!(!is_date_time(bad), "{bad}");
        }
    }

    #[test]
    fn nullable_ref_reports_the_inner_failures() {
        let s = json!({
            "$defs": {"A": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}},
            "anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}]
        });
        assert!(check(s.clone(), json!(null)).is_empty());
        assert!(check(s.clone(), json!({"x": "y"})).is_empty());
        assert_eq!(
            check(s.clone(), json!({"x": 1})),
            vec![("/x".into(), "type", "1 is not of type \"string\"".into())]
        );
        // Both branches fail on the type of the value itself: one `anyOf` failure.
        assert_eq!(
            check(s, json!("y")),
            vec![(
                "".into(),
                "anyOf",
                "\"y\" is not valid under any of the schemas listed in the 'anyOf' keyword".into()
            )]
        );
    }

    #[test]
    fn a_ref_cycle_ends() {
        let s = json!({"$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"});
        let got = check(s, json!(1));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, "$ref");
    }
}
