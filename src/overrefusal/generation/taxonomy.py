"""The category taxonomy: names, definitions and the word used to ask for seeds."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from overrefusal.errors import BadInputError

DEFAULT_TAXONOMY = "taxonomy.yaml"


class Category(BaseModel):
    """One category of prompts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    """Name as written in the dataset's ``category`` column."""
    definition: str = Field(min_length=1)
    """What belongs in the category; shown to moderators."""
    seed_word: str | None = None
    """Adjective used when asking for seeds (default: the name)."""

    @field_validator("name")
    @classmethod
    def _clean(cls, value: str) -> str:
        value = value.strip()
        if not value or "[" in value or "]" in value:
            raise ValueError("a category name must be non-empty and contain no brackets")
        return value

    @property
    def word(self) -> str:
        """The adjective for seed requests."""
        return self.seed_word or self.name


class Taxonomy(BaseModel):
    """An ordered list of categories; the moderator sees them numbered in this order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    categories: tuple[Category, ...] = Field(min_length=1)

    @field_validator("categories")
    @classmethod
    def _unique(cls, value: tuple[Category, ...]) -> tuple[Category, ...]:
        names = [c.name.lower() for c in value]
        if len(set(names)) != len(names):
            raise ValueError("category names must be unique")
        return value

    @property
    def names(self) -> list[str]:
        """Category names in order."""
        return [c.name for c in self.categories]

    def get(self, name: str) -> Category:
        """The category called ``name`` (case-insensitive)."""
        for category in self.categories:
            if category.name.lower() == name.lower():
                return category
        raise BadInputError(f"unknown category {name!r}: choose from {', '.join(self.names)}")

    def subset(self, names: list[str] | None) -> Taxonomy:
        """Only the named categories (all when ``names`` is empty or None), keeping the taxonomy order."""
        if not names:
            return self
        wanted = {self.get(n).name for n in names}
        return Taxonomy(categories=tuple(c for c in self.categories if c.name in wanted))


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load a taxonomy YAML (``categories: [{name, definition, seed_word?}]``); the OR-Bench 10 by default."""
    if path is None:
        text = resources.files("overrefusal.generation").joinpath(DEFAULT_TAXONOMY).read_text(encoding="utf-8")
        where = "the built-in taxonomy"
    else:
        file = Path(path)
        if not file.is_file():
            raise BadInputError(f"taxonomy file {file} does not exist: give a YAML file with a `categories:` list")
        text = file.read_text(encoding="utf-8")
        where = str(file)
    try:
        data = yaml.safe_load(text)
        return Taxonomy.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        first = str(exc).splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise BadInputError(
            f"{where} is not a valid taxonomy ({detail}): write `categories:` with name and definition per item"
        ) from None
