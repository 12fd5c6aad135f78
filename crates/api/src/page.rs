//! Paging of native list answers: `$top` and `$skipToken`, with a `nextLink` to the next
//! page.

use axum::Json;
use axum::extract::OriginalUri;

use crate::dto::ListDto;
use crate::error::{ApiError, ErrorCode};
use crate::extract::QueryParams;

/// The most items one page of a list holds.
pub(crate) const MAX_PAGE_ITEMS: usize = 1000;

type ApiResult<T> = Result<T, ApiError>;

/// Cuts a list into pages with `$top` (at most [`MAX_PAGE_ITEMS`]) and `$skipToken`.
pub(crate) fn page<T, D>(
    items: Vec<T>,
    query: &QueryParams,
    uri: &OriginalUri,
) -> ApiResult<Json<ListDto<D>>>
where
    D: From<T>,
{
    let top = query.parsed::<usize>("$top")?.unwrap_or(MAX_PAGE_ITEMS);
    if top == 0 || top > MAX_PAGE_ITEMS {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!("$top must be 1 to {MAX_PAGE_ITEMS}"),
        )
        .with_target("$top"));
    }
    let skip = query.parsed::<usize>("$skipToken")?.unwrap_or(0);
    let total = items.len();
    let value: Vec<D> = items
        .into_iter()
        .skip(skip)
        .take(top)
        .map(D::from)
        .collect();
    let next = skip.saturating_add(top);
    let next_link =
        (next < total).then(|| format!("{}?{}", uri.0.path(), query.next_page("$skipToken", next)));
    Ok(Json(ListDto { value, next_link }))
}
