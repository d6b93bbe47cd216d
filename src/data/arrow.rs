//! JSON values ↔ Arrow arrays: one column of `serde_json::Value`s becomes one typed Arrow array
//! (the type inferred over the whole column, as pyarrow infers it from Python objects), and a
//! cell of any supported Arrow array reads back as the JSON value a row holds.
//!
//! Columns whose values do not share one type (an int in one row, a string in the next) have no
//! Arrow type; they are kept as their JSON text in a `string` column whose field carries
//! [`JSON_METADATA`], so rows still read back as the original values.
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, LargeStringArray, ListArray,
    NullArray, StringArray, StructArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Fields};
use serde_json::Value;
use std::sync::Arc;

/// Field metadata key marking a column of JSON text that stands for values of mixed types.
pub(crate) const JSON_METADATA: &str = "massivetext.json";

/// A cell of a [`JSON_METADATA`] column as the value it stands for: its JSON text parsed
/// (left as the string if it does not parse, as a cell written by another tool may).
pub(crate) fn json_cell(v: Value) -> Value {
    match &v {
        Value::String(s) => serde_json::from_str(s).unwrap_or(v),
        _ => v,
    }
}

/// The type a column of JSON values takes, merged over every value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool,
    Int,
    Float,
    Str,
    List(Box<Kind>),
    Struct(Vec<(String, Kind)>),
    Mixed,
}

pub(crate) fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_i64() => Kind::Int,
        Value::Number(_) => Kind::Float,
        Value::String(_) => Kind::Str,
        Value::Array(items) => Kind::List(Box::new(
            items.iter().fold(Kind::Null, |k, v| merge(k, kind_of(v))),
        )),
        Value::Object(m) => Kind::Struct(m.iter().map(|(k, v)| (k.clone(), kind_of(v))).collect()),
    }
}

pub(crate) fn merge(a: Kind, b: Kind) -> Kind {
    match (a, b) {
        (Kind::Mixed, _) | (_, Kind::Mixed) => Kind::Mixed,
        (Kind::Null, x) | (x, Kind::Null) => x,
        (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Kind::Float,
        (Kind::List(a), Kind::List(b)) => Kind::List(Box::new(merge(*a, *b))),
        (Kind::Struct(mut a), Kind::Struct(b)) => {
            for (name, kb) in b {
                match a.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, ka)) => *ka = merge(std::mem::replace(ka, Kind::Null), kb),
                    None => a.push((name, kb)),
                }
            }
            Kind::Struct(a)
        }
        (a, b) if a == b => a,
        _ => Kind::Mixed,
    }
}

fn has_mixed(k: &Kind) -> bool {
    match k {
        Kind::Mixed => true,
        Kind::List(k) => has_mixed(k),
        Kind::Struct(fields) => fields.iter().any(|(_, k)| has_mixed(k)),
        _ => false,
    }
}

/// One Arrow array for a column of JSON values, and whether it is the JSON-text fallback.
pub(crate) fn from_values(values: &[Value]) -> (ArrayRef, bool) {
    let kind = values.iter().fold(Kind::Null, |k, v| merge(k, kind_of(v)));
    if has_mixed(&kind) {
        let text: Vec<Option<String>> = values
            .iter()
            .map(|v| (!v.is_null()).then(|| v.to_string()))
            .collect();
        return (strings(text.iter().map(Option::as_deref)), true);
    }
    let refs: Vec<&Value> = values.iter().collect();
    (build(&kind, &refs), false)
}

/// As [`from_values`], over borrowed values whose merged kind the caller has (so a chunk of
/// rows is typed once, and chunks can be re-typed to the kind merged over all of them).
pub(crate) fn from_refs(values: &[&Value], kind: &Kind) -> (ArrayRef, bool) {
    if has_mixed(kind) {
        let text: Vec<Option<String>> = values
            .iter()
            .map(|v| (!v.is_null()).then(|| v.to_string()))
            .collect();
        return (strings(text.iter().map(Option::as_deref)), true);
    }
    (build(kind, values), false)
}

/// The kind merged over borrowed values.
pub(crate) fn kind_of_refs(values: &[&Value]) -> Kind {
    scalar_kind(values)
        .unwrap_or_else(|| values.iter().fold(Kind::Null, |k, v| merge(k, kind_of(v))))
}

/// [`kind_of_refs`] for a column of scalars (the common case) in one pass of flags, without a
/// `Kind` per value; `None` when a value is a list or an object. The same result as merging.
fn scalar_kind(values: &[&Value]) -> Option<Kind> {
    let (mut bool, mut int, mut float, mut str) = (false, false, false, false);
    for v in values {
        match v {
            Value::Null => {}
            Value::Bool(_) => bool = true,
            Value::Number(n) if n.is_i64() => int = true,
            Value::Number(_) => float = true,
            Value::String(_) => str = true,
            Value::Array(_) | Value::Object(_) => return None,
        }
    }
    let number = int || float;
    Some(match (bool, number, str) {
        (false, false, false) => Kind::Null,
        (true, false, false) => Kind::Bool,
        (false, true, false) if float => Kind::Float,
        (false, true, false) => Kind::Int,
        (false, false, true) => Kind::Str,
        _ => Kind::Mixed,
    })
}

/// A `string` array (`large_string` past 2 GiB of text, where 32-bit offsets end).
pub(crate) fn strings<'a>(values: impl Iterator<Item = Option<&'a str>> + Clone) -> ArrayRef {
    let bytes: usize = values.clone().map(|s| s.map_or(0, str::len)).sum();
    if bytes < i32::MAX as usize {
        Arc::new(values.collect::<StringArray>())
    } else {
        Arc::new(values.collect::<LargeStringArray>())
    }
}

fn nulls(values: &[&Value]) -> Option<NullBuffer> {
    values
        .iter()
        .any(|v| v.is_null())
        .then(|| NullBuffer::from(values.iter().map(|v| !v.is_null()).collect::<Vec<_>>()))
}

fn build(kind: &Kind, values: &[&Value]) -> ArrayRef {
    match kind {
        Kind::Null | Kind::Mixed => Arc::new(NullArray::new(values.len())),
        Kind::Bool => Arc::new(values.iter().map(|v| v.as_bool()).collect::<BooleanArray>()),
        Kind::Int => Arc::new(values.iter().map(|v| v.as_i64()).collect::<Int64Array>()),
        Kind::Float => Arc::new(values.iter().map(|v| v.as_f64()).collect::<Float64Array>()),
        Kind::Str => strings(values.iter().map(|v| v.as_str())),
        Kind::List(item) => {
            let mut offsets = Vec::with_capacity(values.len() + 1);
            offsets.push(0i32);
            let mut children: Vec<&Value> = Vec::new();
            for v in values {
                if let Value::Array(items) = v {
                    children.extend(items.iter());
                }
                offsets.push(children.len() as i32);
            }
            let child = build(item, &children);
            let field = Arc::new(Field::new_list_field(child.data_type().clone(), true));
            Arc::new(ListArray::new(
                field,
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                child,
                nulls(values),
            ))
        }
        Kind::Struct(fields) => {
            if fields.is_empty() {
                return Arc::new(StructArray::new_empty_fields(values.len(), nulls(values)));
            }
            let arrays: Vec<ArrayRef> = fields
                .iter()
                .map(|(name, k)| {
                    let children: Vec<&Value> = values
                        .iter()
                        .map(|v| v.get(name).unwrap_or(&Value::Null))
                        .collect();
                    build(k, &children)
                })
                .collect();
            let fields: Fields = fields
                .iter()
                .zip(&arrays)
                .map(|((name, _), a)| Field::new(name, a.data_type().clone(), true))
                .collect();
            Arc::new(StructArray::new(fields, arrays, nulls(values)))
        }
    }
}

/// Whether every cell of an array of this type reads back as a JSON value (the types
/// `datasets` writes for text, numbers, booleans, lists and dicts).
pub(crate) fn supported(t: &DataType) -> bool {
    use DataType::*;
    match t {
        Null | Boolean | Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64
        | Float16 | Float32 | Float64 | Utf8 | LargeUtf8 | Utf8View | Binary | LargeBinary => true,
        List(f) | LargeList(f) | FixedSizeList(f, _) => supported(f.data_type()),
        Struct(fields) => fields.iter().all(|f| supported(f.data_type())),
        _ => false,
    }
}

/// The name a column's type has in `dataset info` and `Display`: `datasets`' `Value` dtype
/// names (`int64`, `float64`, `bool`, `string`, `null`, ...), `list` and `struct` for nested ones.
pub(crate) fn dtype_name(t: &DataType) -> &'static str {
    use DataType::*;
    match t {
        Null => "null",
        Boolean => "bool",
        Int8 => "int8",
        Int16 => "int16",
        Int32 => "int32",
        Int64 => "int64",
        UInt8 => "uint8",
        UInt16 => "uint16",
        UInt32 => "uint32",
        UInt64 => "uint64",
        Float16 => "float16",
        Float32 => "float32",
        Float64 => "float64",
        Utf8 | Utf8View => "string",
        LargeUtf8 => "large_string",
        Binary | LargeBinary => "binary",
        List(_) | LargeList(_) | FixedSizeList(_, _) => "list",
        Struct(_) => "struct",
        _ => "unsupported",
    }
}

/// The JSON value of cell `i` (nulls, numbers, text, lists and structs; see [`supported`]).
pub(crate) fn value_at(a: &dyn Array, i: usize) -> Value {
    use DataType::*;
    if a.data_type() == &Null || a.is_null(i) {
        return Value::Null;
    }
    match a.data_type() {
        Boolean => Value::Bool(a.as_boolean().value(i)),
        Int8 => a.as_primitive::<Int8Type>().value(i).into(),
        Int16 => a.as_primitive::<Int16Type>().value(i).into(),
        Int32 => a.as_primitive::<Int32Type>().value(i).into(),
        Int64 => a.as_primitive::<Int64Type>().value(i).into(),
        UInt8 => a.as_primitive::<UInt8Type>().value(i).into(),
        UInt16 => a.as_primitive::<UInt16Type>().value(i).into(),
        UInt32 => a.as_primitive::<UInt32Type>().value(i).into(),
        UInt64 => a.as_primitive::<UInt64Type>().value(i).into(),
        Float16 => f64::from(a.as_primitive::<Float16Type>().value(i)).into(),
        Float32 => f64::from(a.as_primitive::<Float32Type>().value(i)).into(),
        Float64 => a.as_primitive::<Float64Type>().value(i).into(),
        Utf8 | LargeUtf8 | Utf8View => Value::String(str_at(a, i).unwrap_or_default().to_string()),
        Binary => bytes(a.as_binary::<i32>().value(i)),
        LargeBinary => bytes(a.as_binary::<i64>().value(i)),
        List(_) => list(a.as_list::<i32>().value(i).as_ref()),
        LargeList(_) => list(a.as_list::<i64>().value(i).as_ref()),
        FixedSizeList(_, _) => list(a.as_fixed_size_list().value(i).as_ref()),
        Struct(fields) => {
            let s = a.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(s.columns())
                    .map(|(f, c)| (f.name().clone(), value_at(c.as_ref(), i)))
                    .collect::<serde_json::Map<_, _>>(),
            )
        }
        _ => Value::Null,
    }
}

/// Cell `i` of a string array, borrowed from the array's buffer (`None` for a null or another type).
pub(crate) fn str_at(a: &dyn Array, i: usize) -> Option<&str> {
    if a.is_null(i) {
        return None;
    }
    match a.data_type() {
        DataType::Utf8 => Some(a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Some(a.as_string::<i64>().value(i)),
        DataType::Utf8View => Some(a.as_string_view().value(i)),
        _ => None,
    }
}

fn list(items: &dyn Array) -> Value {
    Value::Array((0..items.len()).map(|j| value_at(items, j)).collect())
}

fn bytes(b: &[u8]) -> Value {
    Value::Array(b.iter().map(|&x| Value::from(x)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_round_trip_through_arrow() {
        let cols = [
            vec![json!(1), Value::Null, json!(-3)],
            vec![json!(1.5), json!(2), Value::Null],
            vec![json!("a"), json!(""), Value::Null],
            vec![json!([1, 2]), json!([]), Value::Null],
            vec![
                json!({"x": [1.5], "y": "s"}),
                Value::Null,
                json!({"x": [], "y": null}),
            ],
            vec![json!(1), json!("one"), Value::Null],
        ];
        for col in cols {
            let (a, is_json) = from_values(&col);
            let back: Vec<Value> = (0..a.len())
                .map(|i| {
                    let v = value_at(a.as_ref(), i);
                    match (is_json, v.as_str()) {
                        (true, Some(s)) => serde_json::from_str(s).unwrap(),
                        _ => v,
                    }
                })
                .collect();
            let want: Vec<Value> = col
                .iter()
                .map(|v| match v {
                    // ints in a float column read back as floats, as pyarrow makes them
                    Value::Number(n) if col.iter().any(|o| o.is_f64()) => json!(n.as_f64()),
                    _ => v.clone(),
                })
                .collect();
            assert_eq!(back, want);
        }
    }

    #[test]
    fn the_scalar_pass_types_a_column_as_merging_does() {
        let pool = [
            Value::Null,
            json!(true),
            json!(-3),
            json!(2.5),
            json!(u64::MAX),
            json!("a"),
            json!([1]),
        ];
        // every column of up to three values from the pool
        let mut columns: Vec<Vec<&Value>> = vec![vec![]];
        for _ in 0..3 {
            let longer: Vec<Vec<&Value>> = columns
                .iter()
                .flat_map(|c| {
                    pool.iter().map(move |v| {
                        let mut c = c.clone();
                        c.push(v);
                        c
                    })
                })
                .collect();
            columns.extend(longer);
        }
        for col in &columns {
            let merged = col.iter().fold(Kind::Null, |k, v| merge(k, kind_of(v)));
            assert_eq!(kind_of_refs(col), merged, "{col:?}");
            let has_list = col.iter().any(|v| v.is_array());
            assert_eq!(scalar_kind(col).is_none(), has_list, "{col:?}");
        }
    }
}
