//! Phone numbers in logs: masked, because logs leave the system (Workers Logs, log drains) and
//! a phone number is personal data. Only the last four digits stay, enough to tell calls apart.

/// `+14155550100` → `+1******0100`; short or odd values are masked entirely.
pub fn phone(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 6 {
        return "***".to_owned();
    }
    let head: String = chars[..2].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 6))
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_only_prefix_and_last_four() {
        assert_eq!(super::phone("+14155550100"), "+1******0100");
        assert_eq!(super::phone("12345"), "***");
        assert!(!super::phone("+442079460000").contains("7946"));
    }
}
