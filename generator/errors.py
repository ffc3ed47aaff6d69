"""Errors the API returns, in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class APIError(Exception):
    """An error a client caused or must know about; rendered with its HTTP status."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] | None = None

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(param: str | None, message: str, code: str = "invalid_value") -> APIError:
    """400: a parameter is missing or has a bad value."""
    return APIError(400, message, param=param, code=code)


def not_found(video_id: str) -> APIError:
    shown = video_id if len(video_id) <= 80 else video_id[:80] + "…"
    return APIError(404, f"No video found with id '{shown}'.", param="video_id", code="not_found")


def unauthorized(message: str = "Missing or incorrect API key. Send it as 'Authorization: Bearer <key>'.") -> APIError:
    return APIError(401, message, type="authentication_error", code="invalid_api_key")


def rate_limited(message: str, retry_after: float = 5.0) -> APIError:
    return APIError(
        429, message, type="rate_limit_error", code="queue_full", headers={"Retry-After": str(int(retry_after))}
    )


def not_ready(video_id: str, status: str) -> APIError:
    return APIError(
        400,
        f"Video '{video_id}' is {status}; its content is available once completed.",
        param="video_id",
        code="video_not_ready",
    )
