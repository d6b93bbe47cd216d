//! Value parsers shared by the subcommands' flags: clap prints their message after
//! `invalid value 'X' for '--flag <N>':`.

/// A whole number of at least 1.
pub fn positive_usize(s: &str) -> Result<usize, String> {
    at_least(s, 1)
}

/// A whole number of at least 1, as `u64`.
pub fn positive_u64(s: &str) -> Result<u64, String> {
    at_least(s, 1)
}

/// A whole number of at least 0.
pub fn whole_number(s: &str) -> Result<usize, String> {
    at_least(s, 0)
}

/// A step count of at least 1 (`TrainingArguments::max_steps`); `-1` reaches it and is
/// refused with the rule rather than read as a flag.
pub fn positive_steps(s: &str) -> Result<usize, String> {
    at_least(s, 1)
}

/// A whole number of at least 2.
pub fn at_least_two(s: &str) -> Result<usize, String> {
    at_least(s, 2)
}

fn at_least<T: TryFrom<i128>>(s: &str, min: i128) -> Result<T, String> {
    let n: i128 = s.trim().parse().map_err(|_| match min {
        0 => format!("`{s}` is not a valid number; give a whole number (0, 1, 2, ...)"),
        _ => format!("`{s}` is not a valid number; give a whole number of at least {min}"),
    })?;
    if n < min {
        return Err(format!("must be at least {min}, got {n}"));
    }
    T::try_from(n).map_err(|_| format!("{n} is too large"))
}

/// A finite number.
pub fn number(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(format!(
            "`{s}` is not a valid number; give e.g. 0.1 or 2e-3"
        )),
    }
}

/// A finite number >= 0.
pub fn non_negative(s: &str) -> Result<f64, String> {
    let x = number(s)?;
    if x < 0.0 {
        return Err(format!("must be 0 or more, got {x}"));
    }
    Ok(x)
}

/// A finite number > 0.
pub fn positive(s: &str) -> Result<f64, String> {
    let x = number(s)?;
    if x <= 0.0 {
        return Err(format!("must be more than 0, got {x}"));
    }
    Ok(x)
}

/// A probability in [0, 1).
pub fn probability(s: &str) -> Result<f64, String> {
    let x = number(s)?;
    if !(0.0..1.0).contains(&x) {
        return Err(format!("must be in [0, 1), got {x}"));
    }
    Ok(x)
}
