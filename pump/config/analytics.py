"""Per-pump ``conditions`` and ``mask``: the shapes of the two keys (ours, not Tyk's).

Only the shape is checked here. What a rule or a mask *means* — a known variable, a regex that
compiles, a value of the variable's type, a maskable field — is checked by the code that compiles
them (:mod:`pump.transforms.conditions`, :mod:`pump.transforms.masking`), once at ``pump validate``
and again when the pump starts, so the check and the behaviour cannot drift apart.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class StrictModel(BaseModel):
    """Unknown keys are errors and ``null`` means the default, as everywhere in the pump file
    (the same rules as ``pump.config.model.StrictModel``, which imports this module)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _nulls_to_defaults(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


#: Operators of a condition rule, as webMethods' custom destinations spell them.
OPERATORS: tuple[str, ...] = (
    "equals",
    "not equals",
    "contains",
    "starts with",
    "ends with",
    "matches",
    "in",
    ">",
    ">=",
    "<",
    "<=",
    "exists",
)
_ALIASES = {"==": "equals", "=": "equals", "!=": "not equals", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}

#: Masking formats: the seed's four (WSO2 → Moesif), ``IP`` (v4 or v6, whichever the value is) and
#: Tyk's ``obfuscate_api_keys`` style (``****abcd``).
MASK_FORMATS: tuple[str, ...] = ("IPV4", "IPV6", "IP", "EMAIL", "STRING", "OBFUSCATE")


class ConditionRule(StrictModel):
    """``{variable, operator, value}``: one test on one variable of a record."""

    variable: str
    operator: str
    value: Any = None

    @field_validator("operator", mode="before")
    @classmethod
    def _operator(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        name = " ".join(v.strip().lower().replace("_", " ").split())
        return _ALIASES.get(name, name)  # an unknown one is reported with the rule's position


class Conditions(StrictModel):
    """``conditions: {type: and|or, rules: [...]}``; an empty rule list keeps every record."""

    type: Literal["and", "or"] = "and"
    rules: list[ConditionRule] = Field(default_factory=list)

    @field_validator("type", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v


class Mask(StrictModel):
    """``mask:``, what one pump must not see in clear.

    ``fields`` maps a record field (its Tyk JSON name) to a format; ``request_headers`` and
    ``response_headers`` name headers whose values are masked inside ``raw_request`` /
    ``raw_response``; ``request_body`` / ``response_body`` map JSON paths (``user.email``,
    ``items.*.card``) inside JSON bodies to a format.
    """

    fields: dict[str, str] = Field(default_factory=dict)
    request_headers: list[str] = Field(default_factory=list)
    response_headers: list[str] = Field(default_factory=list)
    request_body: dict[str, str] = Field(default_factory=dict)
    response_body: dict[str, str] = Field(default_factory=dict)
    obfuscate_length: int = Field(4, ge=1, le=64, description="characters OBFUSCATE keeps at the end")

    @field_validator("fields", "request_body", "response_body", mode="before")
    @classmethod
    def _formats(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out: dict[Any, Any] = {}
        for key, fmt in v.items():
            name = fmt.strip().upper() if isinstance(fmt, str) else fmt
            if name not in MASK_FORMATS:
                raise ValueError(f"{key}: unknown format {fmt!r}; expected one of: {', '.join(MASK_FORMATS)}")
            out[key] = name
        return out

    def is_empty(self) -> bool:
        return not (self.fields or self.request_headers or self.response_headers or self.request_body or self.response_body)
