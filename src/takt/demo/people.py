"""Made-up people: names, addresses, emails and phone numbers (valid by ``phonenumbers``), from a seeded RNG."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import date

import phonenumbers

FIRST = ("Anna", "Lena", "Mia", "Emma", "Sofia", "Clara", "Hanna", "Lea", "Marie", "Julia", "Nora", "Ida",
         "Ella", "Frida", "Sara", "Laura", "Lukas", "Jonas", "Felix", "Paul", "Leon", "Elias", "Noah", "Ben",
         "Finn", "Max", "Tom", "Jan", "David", "Simon", "Oskar", "Milan", "Emil", "Jakob", "Moritz", "Karl",
         "Zoë", "Chloé", "Søren", "Jürgen", "Ines", "Timo", "Lars", "Amira", "Yusuf", "Mei", "Ravi", "Olga")
LAST = ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
        "Koch", "Richter", "Klein", "Wolf", "Neumann", "Schwarz", "Braun", "Zimmermann", "Krüger", "Hartmann",
        "Lange", "Werner", "Krause", "Lehmann", "de Vries", "Jansen", "Bakker", "Smith", "Jones", "Taylor",
        "Brown", "Martin", "Bernard", "Dubois", "Nielsen", "Jensen", "Andersson", "Berg", "Huber", "Gruber",
        "Keller", "Frei", "Öztürk", "Nowak", "Kowalski", "Rossi", "García", "Silva")
EMAIL_DOMAINS = ("gmail.com", "gmx.de", "web.de", "outlook.com", "posteo.de", "icloud.com", "yahoo.com",
                 "proton.me", "t-online.de", "hotmail.com")


@dataclass(frozen=True)
class Country:
    code: str
    language: str
    cities: tuple[tuple[str, str], ...]
    """(city, postal code prefix)"""
    phone_prefix: str
    phone_digits: int
    weight: float


COUNTRIES: tuple[Country, ...] = (
    Country("DE", "de", (("Berlin", "10"), ("Hamburg", "20"), ("München", "80"), ("Köln", "50"), ("Frankfurt", "60"),
                         ("Leipzig", "04"), ("Freiburg", "79")), "+49 151 ", 8, 0.55),
    Country("AT", "de", (("Wien", "10"), ("Graz", "80"), ("Innsbruck", "60")), "+43 664 ", 7, 0.1),
    Country("CH", "de", (("Zürich", "80"), ("Bern", "30"), ("Luzern", "60")), "+41 79 ", 7, 0.1),
    Country("NL", "nl", (("Amsterdam", "10"), ("Utrecht", "35"), ("Rotterdam", "30")), "+31 6 ", 8, 0.1),
    Country("DK", "da", (("København", "1"), ("Aarhus", "8")), "+45 2", 7, 0.05),
    Country("SE", "sv", (("Stockholm", "11"), ("Göteborg", "41")), "+46 70 ", 7, 0.05),
    Country("GB", "en", (("London", "E1"), ("Manchester", "M1"), ("Edinburgh", "EH1")), "+44 7911 ", 6, 0.05),
)
_COUNTRY_WEIGHTS = [c.weight for c in COUNTRIES]
STREETS = ("Hauptstraße", "Bahnhofstraße", "Gartenweg", "Lindenallee", "Schulstraße", "Bergstraße", "Seestraße",
           "Marktplatz", "Kirchgasse", "Parkweg")


def ascii_slug(s: str) -> str:
    s = s.replace("ß", "ss").replace("ø", "o").replace("Ø", "O")
    norm = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    return "".join(ch for ch in norm.lower() if ch.isalnum())


def phone_number(rng: random.Random, country: Country) -> str:
    """A mobile number that ``phonenumbers`` accepts as valid, in a readable national style."""
    for _ in range(20):
        s = country.phone_prefix + "".join(rng.choice("0123456789") for _ in range(country.phone_digits))
        if phonenumbers.is_valid_number(phonenumbers.parse(s, None)):
            return s
    return "+49 151 " + "".join(rng.choice("0123456789") for _ in range(8))


@dataclass(frozen=True)
class Person:
    first_name: str
    last_name: str
    email: str
    phone: str | None
    country: Country
    city: str
    street: str
    postal_code: str
    birthday: date
    gender: str


def make_person(rng: random.Random, n: int, year: int) -> Person:
    first = rng.choice(FIRST)
    last = rng.choice(LAST)
    country = rng.choices(COUNTRIES, weights=_COUNTRY_WEIGHTS)[0]
    city, plz = rng.choice(country.cities)
    style = rng.random()
    f, la = ascii_slug(first), ascii_slug(last)
    local = f"{f}.{la}" if style < 0.5 else (f"{f[0]}{la}{n % 97}" if style < 0.8 else f"{f}{la}{n % 1000}")
    email = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
    phone = phone_number(rng, country) if rng.random() < 0.55 else None
    postal = plz + "".join(rng.choice("0123456789") for _ in range(max(0, 5 - len(plz))))
    if country.code == "GB":
        postal = f"{plz} {rng.randint(1, 9)}{rng.choice('ABDEFGHJ')}{rng.choice('LNPQRSTU')}"
    age = int(rng.triangular(18, 80, 38))
    birthday = date(year - age, rng.randint(1, 12), rng.randint(1, 28))
    return Person(first, last, email, phone, country, city, f"{rng.choice(STREETS)} {rng.randint(1, 120)}",
                  postal, birthday, rng.choice(("female", "male", "female", "male", "diverse")))
