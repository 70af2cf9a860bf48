"""The demo retailer's world: destinations, product categories and a fixed product catalog.

Interests are ``kind:value`` tags (``destination:krabi``, ``activity:diving``, ``climate:tropical``); product
views carry the viewed product's tags, so a customer's interests follow the trips they plan.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Destination:
    slug: str
    name: str
    region: str
    climate: str
    activities: tuple[str, ...]
    months: tuple[int, ...]
    """The months trips there are most often taken."""
    searches: tuple[str, ...]


DESTINATIONS: tuple[Destination, ...] = (
    Destination("krabi", "Krabi", "asia", "tropical", ("diving", "beach", "island-hopping"), (11, 12, 1, 2, 3),
                ("krabi", "krabi snorkeling", "thailand beach", "railay beach", "krabi island hopping")),
    Destination("bali", "Bali", "asia", "tropical", ("surfing", "beach", "yoga"), (4, 5, 6, 7, 8, 9),
                ("bali", "bali surf", "ubud", "bali yoga retreat")),
    Destination("new-york", "New York", "north-america", "temperate", ("city-break", "museums", "shopping"),
                (3, 4, 5, 9, 10, 11, 12), ("new york", "nyc winter", "new york city guide", "manhattan")),
    Destination("lapland", "Lapland", "europe", "arctic", ("skiing", "northern-lights", "husky-safari"),
                (12, 1, 2, 3), ("lapland", "northern lights", "rovaniemi", "husky safari")),
    Destination("patagonia", "Patagonia", "south-america", "cold", ("trekking", "camping"), (11, 12, 1, 2),
                ("patagonia", "torres del paine", "patagonia trek")),
    Destination("iceland", "Iceland", "europe", "cold", ("hiking", "northern-lights", "road-trip"),
                (6, 7, 8, 9, 10), ("iceland", "iceland ring road", "reykjavik")),
    Destination("lisbon", "Lisbon", "europe", "mild", ("city-break", "surfing"), (3, 4, 5, 6, 9, 10),
                ("lisbon", "lisbon city break", "ericeira surf")),
    Destination("alps", "the Alps", "europe", "alpine", ("hiking", "skiing", "climbing"), (1, 2, 3, 6, 7, 8, 9, 12),
                ("alps", "alpine hut", "via ferrata", "ski touring")),
    Destination("tokyo", "Tokyo", "asia", "temperate", ("city-break", "food"), (3, 4, 10, 11),
                ("tokyo", "japan rail pass", "kyoto")),
    Destination("scotland", "Scotland", "europe", "cold", ("hiking", "road-trip"), (5, 6, 7, 8, 9),
                ("scotland", "west highland way", "isle of skye")),
)
DESTINATION = {d.slug: d for d in DESTINATIONS}


@dataclass(frozen=True)
class Category:
    slug: str
    noun: str
    price: tuple[float, float]
    tags: tuple[str, ...]
    """The interests a product of this category signals (climates and activities it fits)."""


CATEGORIES: tuple[Category, ...] = (
    Category("backpacks", "Backpack", (49, 229), ("activity:hiking", "activity:trekking", "activity:road-trip")),
    Category("tents", "Tent", (89, 649), ("activity:camping", "activity:trekking")),
    Category("sleeping-bags", "Sleeping Bag", (59, 399), ("activity:camping", "climate:cold")),
    Category("hiking-boots", "Hiking Boots", (89, 259), ("activity:hiking", "activity:trekking", "climate:alpine")),
    Category("rain-jackets", "Rain Jacket", (79, 349), ("activity:hiking", "climate:cold", "climate:mild")),
    Category("down-jackets", "Down Jacket", (129, 449), ("climate:arctic", "climate:cold", "activity:city-break")),
    Category("ski-gear", "Ski Goggles", (49, 199), ("activity:skiing", "climate:arctic", "climate:alpine")),
    Category("swimwear", "Swim Shorts", (25, 89), ("activity:beach", "climate:tropical")),
    Category("snorkel-gear", "Snorkel Set", (29, 149), ("activity:diving", "activity:island-hopping",
                                                       "climate:tropical")),
    Category("surf", "Surf Poncho", (39, 119), ("activity:surfing", "climate:tropical", "climate:mild")),
    Category("sunglasses", "Sunglasses", (39, 189), ("activity:beach", "climate:tropical", "activity:skiing")),
    Category("luggage", "Trolley", (99, 399), ("activity:city-break", "activity:shopping")),
    Category("city-bags", "Daypack", (39, 129), ("activity:city-break", "activity:museums", "activity:food")),
    Category("travel-accessories", "Travel Adapter", (12, 49), ("activity:city-break", "activity:road-trip")),
    Category("yoga", "Travel Yoga Mat", (29, 89), ("activity:yoga",)),
    Category("guidebooks", "Guide", (14, 32), ()),
)
CATEGORY = {c.slug: c for c in CATEGORIES}

_BRANDS = ("Fjellrev", "Nordkap", "Summit & Co", "Wayfarer", "Tidewater", "Basecamp", "Lumen", "Kestrel")
_MODELS = ("Lite", "Pro", "Explorer", "Classic", "Trail", "Urban")


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    category: str
    price: float
    interests: tuple[str, ...]

    def as_row(self) -> dict[str, str]:
        return {"product_id": self.product_id, "name": self.name, "category": self.category,
                "price": f"{self.price:.2f}", "interests": ";".join(self.interests)}

    def as_segment(self) -> dict[str, object]:
        return {"product_id": self.product_id, "name": self.name, "category": self.category, "price": self.price}


def _build_catalog() -> tuple[Product, ...]:
    out: list[Product] = []
    for ci, cat in enumerate(CATEGORIES):
        if cat.slug == "guidebooks":
            continue
        lo, hi = cat.price
        for mi, model in enumerate(_MODELS):
            brand = _BRANDS[(ci * 3 + mi) % len(_BRANDS)]
            price = round(lo + (hi - lo) * ((ci * 7 + mi * 13) % 17) / 16, 0) - 0.05
            out.append(Product(f"P{100 + ci * 10 + mi}", f"{brand} {model} {cat.noun}", cat.slug, price,
                               (f"category:{cat.slug}", *cat.tags)))
    for di, d in enumerate(DESTINATIONS):
        out.append(Product(f"G{500 + di}", f"{d.name} Travel Guide", "guidebooks", 19.95 + di % 3 * 4,
                           ("category:guidebooks", f"destination:{d.slug}", f"region:{d.region}",
                            f"climate:{d.climate}", *(f"activity:{a}" for a in d.activities))))
    return tuple(out)


CATALOG: tuple[Product, ...] = _build_catalog()
PRODUCT = {p.product_id: p for p in CATALOG}


def products_for(dest: Destination) -> tuple[Product, ...]:
    """Products that fit a trip: its guide, and gear for its climate and activities."""
    wanted = {f"climate:{dest.climate}", *(f"activity:{a}" for a in dest.activities)}
    return tuple(p for p in CATALOG
                 if f"destination:{dest.slug}" in p.interests
                 or (p.category != "guidebooks" and wanted.intersection(p.interests)))


TRIP_PRODUCTS: dict[str, tuple[Product, ...]] = {d.slug: products_for(d) for d in DESTINATIONS}
GEAR: tuple[Product, ...] = tuple(p for p in CATALOG if p.category != "guidebooks")


def view_interests(product: Product, dest: Destination | None) -> list[str]:
    """The interests a product view signals: the product's tags, plus the trip's destination if it fits."""
    tags = list(product.interests)
    if dest is not None:
        for t in (f"destination:{dest.slug}", f"region:{dest.region}"):
            if t not in tags:
                tags.append(t)
    return tags


ALIASES: dict[str, tuple[str, ...]] = {
    "krabi": ("thailand", "railay"), "bali": ("ubud",), "new-york": ("nyc", "manhattan"),
    "lapland": ("rovaniemi",), "patagonia": ("torres del paine",), "iceland": ("reykjavik", "ring road"),
    "lisbon": ("ericeira",), "alps": ("alpine", "via ferrata"), "tokyo": ("japan", "kyoto"),
    "scotland": ("highland", "isle of skye"),
}
"""Search words that mean a destination besides its name ("nyc winter" is New York)."""


def taxonomy() -> dict[str, str]:
    """The demo's ``interests.taxonomy``: each destination's name and aliases → ``destination:<slug>``, so
    searches ("krabi snorkeling", "nyc winter") and page paths ("/trips/new-york") become destination
    interests."""
    out: dict[str, str] = {}
    for d in DESTINATIONS:
        key = f"destination:{d.slug}"
        for term in (d.name.removeprefix("the "), d.slug.replace("-", " "), *ALIASES.get(d.slug, ())):
            out[term.lower()] = key
    return out
