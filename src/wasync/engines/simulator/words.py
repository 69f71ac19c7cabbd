"""Word lists for names, group titles and message bodies.

Message bodies come from a fixed table of phrases built once at import, so producing
a text message is one table lookup instead of joining words per message.
"""

from __future__ import annotations

import random


def _items(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


FIRST_NAMES = _items(
    """
    Ana, Ahmed, Aiko, Alex, Amara, Andrés, Anna, Arjun, Ayşe, Beatriz, Ben, Bilal,
    Camille, Carlos, Chen, Chiara, Chloé, Daniel, David, Deepa, Diego, Elena, Emma,
    Fatima, Felix, Fernanda, Gabriel, Grace, Hana, Hassan, Ines, Ivan, Jamal, Jana, João,
    Julia, Kai, Karim, Kemal, Laura, Leila, Leon, Lina, Lucas, Luis, Maya, Mehmet, Mia,
    Miguel, Mohammed, Nadia, Nina, Noah, Olga, Omar, Pablo, Paula, Priya, Rafael, Rania,
    Ravi, Rosa, Sakura, Samir, Sara, Sofia, Sven, Tariq, Thomas, Tomás, Valentina, Wei,
    Yara, Yusuf, Zainab, Zoe
    """
)

LAST_NAMES = _items(
    """
    Abadi, Almeida, Andersen, Bauer, Becker, Costa, Da Silva, Demir, Dubois, Fernández,
    Fischer, García, Gómez, Hansen, Hoffmann, Ibrahim, Ito, Jensen, Kaya, Khan, Kim,
    Kowalski, Kumar, Lee, Lopez, Martin, Meyer, Moreau, Müller, Nakamura, Nguyen, Novak,
    Okafor, Oliveira, Patel, Pereira, Petrov, Rossi, Said, Santos, Schmidt, Sharma,
    Silva, Singh, Suzuki, Tanaka, Wagner, Wang, Weber, Yilmaz, Zhang
    """
)

GROUP_WORDS = _items(
    """
    Family, Football, Book Club, Neighbours, Climbing, Office, Project, Trip, Parents,
    Running, Band, Alumni, Garden, Cooking, Chess, Housemates, Wedding, Birthday,
    Volunteers, Startup, Photography, Yoga, Board Games, Cycling, Study Group, Choir,
    Market, Support, Sales, Ops
    """
)

# Empty entries make most groups plain names.
GROUP_SUFFIXES = ("", "", "", " 2024", " 2025", " Crew", " Team", " Friends", " Chat", " 🎉")

_WORDS = _items(
    """
    ok, yes, no, maybe, sure, thanks, see, you, later, tomorrow, today, tonight, morning,
    evening, meeting, call, me, when, are, we, going, to, the, a, at, in, on, for, with,
    and, but, lunch, dinner, coffee, train, bus, late, early, sorry, great, perfect,
    nice, cool, photo, send, sent, got, it, done, home, office, party, weekend, plan,
    plans, ticket, tickets, booked, price, address, location, left, arrived, waiting,
    outside, inside, bring, forgot, keys, phone, charger, love, miss, happy, birthday,
    congrats, good, night, luck, match, game, score, won, lost, book, read, watch, movie,
    series, episode, music, song, gym, run, walk, rain, sun, cold, hot, weather, doctor,
    school, kids, work, report, deadline, draft, review, invoice, paid, pay, order,
    delivery, package, shop, market, bread, milk, eggs, pizza, cake
    """
)

_TAILS = ("", "", "", "", "!", "?", ".", " 😂", " 👍", " 🙏", " ❤️", "...", " :)", " 🎉")

EMOJIS = ("👍", "❤️", "😂", "😮", "😢", "🙏", "🔥", "🎉")

PHRASE_BITS = 12


def _build_phrases() -> tuple[str, ...]:
    # A fixed seed: the table is part of the simulator's definition, not of a network.
    rng = random.Random(20240601)
    phrases = []
    for _ in range(1 << PHRASE_BITS):
        words = [rng.choice(_WORDS) for _ in range(rng.choice((1, 2, 3, 3, 4, 5, 6, 8, 12)))]
        text = " ".join(words)
        phrases.append(text[0].upper() + text[1:] + rng.choice(_TAILS))
    return tuple(phrases)


PHRASES = _build_phrases()
