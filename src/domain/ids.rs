//! Id lists in filters: the one parser behind every `…Ids` argument, so every filter refuses the
//! same things with the same messages (too many ids; each malformed id, by index).

use uuid::Uuid;

use crate::error::FieldError;

/// Most ids one filter list may carry: a filter is a selection, not a bulk export of keys.
pub const MAX_FILTER_IDS: usize = 1_000;

/// Parses the ids of the list argument `field`. Every malformed id is reported (as
/// `field[index]`), not only the first, so a client can fix its request in one go.
pub fn parse_id_list<S: AsRef<str>>(field: &str, ids: &[S]) -> Result<Vec<Uuid>, Vec<FieldError>> {
    if ids.len() > MAX_FILTER_IDS {
        return Err(vec![FieldError::new(field, format!("at most {MAX_FILTER_IDS} ids"))]);
    }
    let mut errors = Vec::new();
    let mut parsed = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        match Uuid::parse_str(id.as_ref()) {
            Ok(u) => parsed.push(u),
            Err(_) => errors.push(FieldError::new(format!("{field}[{i}]"), "not a valid id")),
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_malformed_id_is_named_by_index() {
        let good = Uuid::new_v4().to_string();
        let errors = parse_id_list("filter.agentIds", &[good.as_str(), "x", "y"]).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["filter.agentIds[1]", "filter.agentIds[2]"]);
        assert_eq!(
            parse_id_list("f", &[good.as_str()]).unwrap(),
            vec![Uuid::parse_str(&good).unwrap()]
        );
    }

    #[test]
    fn too_many_ids_is_one_error_on_the_list() {
        let ids = vec![Uuid::nil().to_string(); MAX_FILTER_IDS + 1];
        let errors = parse_id_list("filter.teamIds", &ids).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "filter.teamIds");
        assert!(parse_id_list("f", &ids[..MAX_FILTER_IDS]).is_ok());
    }
}
