"""Sentences for the synthetic corpus: a small grammar per language with word lists chosen for phone
coverage (every phone of the language shows up within a few dozen sentences), plus a stable rule for
holding sentences out of training.

Noun phrases carry their article and gender so Romance adjectives agree ("la casa es roja"); German
objects are already accusative. Numbers are written as digits so the TTS engine's own number reading
is part of the data.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from engine.data.splits import normalize_sentence

# The languages DualFace speaks (ISO 639-1) and their names in the add-on's Language menu.
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "de": "German", "fr": "French", "it": "Italian"}
LANGUAGES: tuple[str, ...] = tuple(LANGUAGE_NAMES)


@dataclass(frozen=True)
class Grammar:
    templates: tuple[
        str, ...
    ]  # slots: {name} {subject} {verb} {object} {adj} {adverb} {place} {number} {plural}
    names: tuple[str, ...]
    subjects: tuple[tuple[str, str], ...]  # (noun phrase, "m" | "f" | "n")
    verbs: tuple[str, ...]  # 3rd person singular, transitive
    objects: tuple[str, ...]
    adjectives: tuple[tuple[str, str], ...]  # (masculine/neuter form, feminine form)
    adverbs: tuple[str, ...]
    places: tuple[str, ...]
    plurals: tuple[str, ...]  # countable nouns after a number
    pangrams: tuple[str, ...]  # whole sentences dense in rare sounds, mixed in now and then


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.split("|") if w.strip())


def _gendered(text: str) -> tuple[tuple[str, str], ...]:
    out = []
    for item in _words(text):
        phrase, _, gender = item.rpartition("/")
        out.append((phrase, gender))
    return tuple(out)


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    out = []
    for item in _words(text):
        masc, _, fem = item.partition("/")
        out.append((masc, fem or masc))
    return tuple(out)


GRAMMARS: dict[str, Grammar] = {
    "en": Grammar(
        templates=(
            "{name} {verb} {object} {place}.",
            "{subject} {verb} {object} {adverb}.",
            "Did {name} really leave {object} {place}?",
            "{subject} looked {adj} {adverb}.",
            "I think {name} bought {number} {plural} {adverb}.",
            "Why is {subject} so {adj} {place}?",
            "{name} and {subject} {verb} {object}.",
            "Yesterday {subject} {verb} {number} {plural}.",
        ),
        names=_words(
            "Peter | Judith | George | Zoe | Yusuf | Thelma | Victor | Charlotte | Oliver | Quentin | Sophia "
            "| Joshua | Ruth | Boyd | Howard | Ursula | Jasmine | Matthew | Beth | Gwen | Nigel | Fiona "
            "| Vivian | Arthur | Xavier | Hugo | Joy | Chuck | Eugene | Wendy"
        ),
        subjects=_gendered(
            "the young doctor/m | my neighbour/m | the shy boy/m | our teacher/m | the old fisherman/m "
            "| the baker/m | the quiet judge/m | the choir/m | a tourist/m | the pilot/m | the plumber/m "
            "| the lawyer/m | the nurse/m | the usual visitor/m | my brother/m | her cousin/m"
        ),
        verbs=_words(
            "found | measured | enjoyed | pushed | watched | borrowed | chose | threw | fixed | thanked "
            "| judged | painted | bought | washed | moved | caught | heard | weighed | pulled | shook "
            "| carried | brought | showed | loved | chased | treasured"
        ),
        objects=_words(
            "the yellow boat | a leather jacket | the heavy box | his usual breakfast | the big purple chair "
            "| a bag of oranges | the rusty bicycle | a cup of hot coffee | the azure vase | the television "
            "| a book of poems | the thick rope | her beige garage door | the wooden toy | a cheap watch "
            "| the noisy engine | a loaf of bread | the fresh fish | the thin envelope | a pair of shoes "
            "| the measuring tape | the treasure map | the vision test | a huge mirror"
        ),
        adjectives=_pairs(
            "happy | tired | surprised | worried | calm | thoughtful | cheerful | jealous | amused | puzzled "
            "| anxious | proud | gloomy | thrilled | bored | pleasant"
        ),
        adverbs=_words(
            "quickly | on Thursday | every morning | without a word | at noon | again | very carefully "
            "| this evening | after lunch | with joy | in June | right away | as usual | the whole day"
        ),
        places=_words(
            "in the garden | near the church | at the zoo | behind the house | on the bridge | by the shore "
            "| under the table | in the kitchen | at the beach | outside the hotel | in the vineyard "
            "| near the mouth of the river | in Boston | at the airport"
        ),
        plurals=_words(
            "apples | books | cheap toys | chairs | jugs | watches | oysters | shoes | thimbles | violins "
            "| pages | zebras | feathers | wolves | mushrooms"
        ),
        pangrams=_words(
            "The quick brown fox jumps over the lazy dog. | Pack my box with five dozen liquor jugs. "
            "| How vexingly quick daft zebras jump! | The five boxing wizards jump quickly. "
            "| She measured the beige garage with unusual pleasure. | Joy and Roy enjoyed the noisy toy."
        ),
    ),
    "es": Grammar(
        templates=(
            "{name} {verb} {object} {place}.",
            "{subject} {verb} {object} {adverb}.",
            "¿Por qué {subject} está tan {adj}?",
            "{subject} parece {adj} {adverb}.",
            "Creo que {name} compró {number} {plural} {adverb}.",
            "{name} y {subject} {verb} {object} {place}.",
            "Ayer {subject} {verb} {number} {plural}.",
        ),
        names=_words(
            "Pablo | Lucía | Jorge | Carmen | Javier | Begoña | Raúl | Ñoño | Ximena | Guillermo | Rocío "
            "| Federico | Marta | Andrés | Yolanda | Chema | Beatriz | Héctor | Inés | Gonzalo"
        ),
        subjects=_gendered(
            "el niño/m | la abuela/f | mi vecino/m | la profesora/f | el panadero/m | la jueza/f "
            "| el carpintero/m | la enfermera/f | mi hermano/m | la chica/f | el pescador/m | la cocinera/f"
        ),
        verbs=_words(
            "buscó | encontró | compró | pintó | lavó | arregló | rompió | llevó | trajo | guardó "
            "| vendió | miró | escuchó | cambió | subió | eligió"
        ),
        objects=_words(
            "la guitarra roja | un zapato viejo | el periódico | la llave de hierro | un jarrón azul "
            "| el queso fresco | la muñeca | un paraguas | el reloj de oro | la silla pequeña "
            "| un pañuelo | el coche rojo | la jaula vacía | un huevo | el cuchillo | la bicicleta"
        ),
        adjectives=_pairs(
            "contento/contenta | cansado/cansada | rojo/roja | tranquilo/tranquila | nervioso/nerviosa "
            "| orgulloso/orgullosa | enfadado/enfadada | feliz | triste | sorprendido/sorprendida"
        ),
        adverbs=_words(
            "rápidamente | por la mañana | cada jueves | sin decir nada | otra vez | con mucho cuidado "
            "| esta noche | después de comer | ahora mismo | en junio"
        ),
        places=_words(
            "en el jardín | cerca de la iglesia | detrás de la casa | en la cocina | junto al río "
            "| en la playa | bajo la mesa | en el parque | en Zaragoza | en la calle mayor"
        ),
        plurals=_words(
            "manzanas | libros | juguetes | sillas | relojes | zapatos | guitarras | huevos | peces"
        ),
        pangrams=_words(
            "El veloz murciélago hindú comía feliz cardillo y kiwi. "
            "| La cigüeña tocaba el saxofón detrás del palenque de paja. "
            "| El perro de Rosa corre por la carretera."
        ),
    ),
    "de": Grammar(
        templates=(
            "{name} {verb} {object} {place}.",
            "{subject} {verb} {object} {adverb}.",
            "Warum ist {subject} so {adj}?",
            "{subject} war {adverb} sehr {adj}.",
            "Ich glaube, {name} kaufte {number} {plural}.",
            "{name} und {subject} {verb} {object}.",
            "Gestern {verb} {subject} {number} {plural}.",
        ),
        names=_words(
            "Jürgen | Brigitte | Klaus | Sophie | Björn | Ursula | Xaver | Günther | Veronika | Matthias "
            "| Charlotte | Zacharias | Jörg | Heike | Wolfgang | Petra | Dietrich | Yvonne"
        ),
        subjects=_gendered(
            "der Bäcker/m | die Lehrerin/f | mein Nachbar/m | das Mädchen/n | der alte Fischer/m "
            "| die Ärztin/f | der Zwerg/m | die Köchin/f | mein Bruder/m | das Kind/n | der Pilot/m"
        ),
        verbs=_words(
            "sah | kaufte | suchte | malte | fand | brachte | wusch | trug | holte | verkaufte | zählte "
            "| putzte | öffnete | versteckte"
        ),
        objects=_words(
            "den großen Apfel | die grüne Tasche | das schwere Buch | einen Becher | den Schlüssel "
            "| die Zeitung | das Fahrrad | einen Pfirsich | den Löffel | die Brücke | das Würstchen "
            "| einen Topf | die Uhr | den Schuh"
        ),
        adjectives=_pairs(
            "müde | glücklich | fröhlich | traurig | ruhig | nervös | stolz | überrascht | zufrieden"
        ),
        adverbs=_words(
            "heute früh | jeden Tag | ohne ein Wort | noch einmal | sehr vorsichtig | am Abend "
            "| nach dem Essen | sofort | im Juli"
        ),
        places=_words(
            "im Garten | bei der Kirche | hinter dem Haus | in der Küche | am Fluss | unter dem Tisch "
            "| auf der Straße | in München | im Zug"
        ),
        plurals=_words("Äpfel | Bücher | Stühle | Schuhe | Fische | Brötchen | Züge | Flaschen"),
        pangrams=_words(
            "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich. "
            "| Falsches Üben von Xylophonmusik quält jeden größeren Zwerg. "
            "| Ich möchte heute Nacht acht Bücher lesen."
        ),
    ),
    "fr": Grammar(
        templates=(
            "{name} {verb} {object} {place}.",
            "{subject} {verb} {object} {adverb}.",
            "Pourquoi {subject} est si {adj} ?",
            "{subject} semble {adj} {adverb}.",
            "Je crois que {name} a acheté {number} {plural}.",
            "{name} et {subject} {verb} {object}.",
            "Chaque jour {subject} {verb} {number} {plural}.",
        ),
        names=_words(
            "Pierre | Juliette | Gérard | Chloé | Benoît | Agnès | Yves | Françoise | Hugues | Zoé "
            "| Mathieu | Brigitte | Jean | Gilles | Sylvie | Xavier | Amélie | Thibault"
        ),
        subjects=_gendered(
            "le boulanger/m | la voisine/f | mon frère/m | la maîtresse/f | le vieux pêcheur/m | la juge/f "
            "| le garçon/m | la cuisinière/f | mon oncle/m | la fille/f | le chanteur/m | la pharmacienne/f"
        ),
        verbs=_words(
            "cherche | trouve | achète | peint | lave | répare | porte | vend | regarde | écoute | choisit "
            "| range | montre | oublie"
        ),
        objects=_words(
            "la guitare rouge | un vieux chapeau | le journal | la clé en fer | un vase bleu | le fromage "
            "| la poupée | un parapluie | la montre en or | le gâteau | un bouquet de fleurs | le pain chaud "
            "| une chaise | le jouet"
        ),
        adjectives=_pairs(
            "heureux/heureuse | fatigué/fatiguée | content/contente | tranquille | nerveux/nerveuse "
            "| fier/fière | surpris/surprise | triste | joyeux/joyeuse"
        ),
        adverbs=_words(
            "rapidement | chaque matin | sans un mot | encore une fois | avec soin | ce soir | après le déjeuner "
            "| tout de suite | en juin | lundi"
        ),
        places=_words(
            "dans le jardin | près de l'église | derrière la maison | dans la cuisine | au bord du lac "
            "| sous la table | à la plage | à Bordeaux | dans la rue"
        ),
        plurals=_words("pommes | livres | chaises | chaussures | poissons | bougies | huîtres | gants"),
        pangrams=_words(
            "Portez ce vieux whisky au juge blond qui fume. "
            "| Voix ambiguë d'un cœur qui au zéphyr préfère les jattes de kiwis. "
            "| Un brun chien de montagne gagne huit nuits."
        ),
    ),
    "it": Grammar(
        templates=(
            "{name} {verb} {object} {place}.",
            "{subject} {verb} {object} {adverb}.",
            "Perché {subject} è così {adj}?",
            "{subject} sembra {adj} {adverb}.",
            "Credo che {name} abbia comprato {number} {plural}.",
            "{name} e {subject} {verb} {object}.",
            "Ogni giorno {subject} {verb} {number} {plural}.",
        ),
        names=_words(
            "Paolo | Giulia | Giorgio | Chiara | Federico | Gianna | Luca | Francesca | Vittorio | Sofia "
            "| Gnocco | Beppe | Zeno | Marta | Stefano | Cecilia | Guglielmo | Ilaria"
        ),
        subjects=_gendered(
            "il fornaio/m | la nonna/f | mio fratello/m | la maestra/f | il vecchio pescatore/m | la cuoca/f "
            "| il ragazzo/m | la figlia/f | mio zio/m | la sciatrice/f | il giudice/m | la gelataia/f"
        ),
        verbs=_words(
            "cerca | trova | compra | dipinge | lava | ripara | porta | vende | guarda | ascolta | sceglie "
            "| prende | mostra | dimentica"
        ),
        objects=_words(
            "la chitarra rossa | un vecchio cappello | il giornale | la chiave di ferro | un vaso azzurro "
            "| il formaggio | la bambola | un ombrello | l'orologio d'oro | la pizza | un mazzo di fiori "
            "| il pane caldo | una sedia | gli gnocchi | il ghiaccio | lo zucchero"
        ),
        adjectives=_pairs(
            "felice | stanco/stanca | contento/contenta | tranquillo/tranquilla | nervoso/nervosa "
            "| orgoglioso/orgogliosa | sorpreso/sorpresa | triste | allegro/allegra"
        ),
        adverbs=_words(
            "velocemente | ogni mattina | senza una parola | ancora una volta | con cura | stasera "
            "| dopo pranzo | subito | a giugno | lunedì"
        ),
        places=_words(
            "nel giardino | vicino alla chiesa | dietro la casa | in cucina | sulla spiaggia "
            "| sotto il tavolo | a Bologna | nella piazza | sul ponte"
        ),
        plurals=_words("mele | libri | sedie | scarpe | pesci | candele | biciclette | gnocchi"),
        pangrams=_words(
            "Ma la volpe col suo balzo ha raggiunto il quieto Fido. "
            "| Pranzo d'acqua fa volti sghembi. "
            "| Il figlio sciocco beve la birra con la moglie."
        ),
    ),
}

_PANGRAM_PROBABILITY = 0.08


def _phone_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# The phones each language's speech uses once eSpeak's symbols are mapped onto engine.phonemes.PHONES
# (engine/data/tts/espeak_phones.py). The word lists are chosen so ~50 sentences cover every one.
LANGUAGE_PHONES: dict[str, frozenset[str]] = {
    "en": _phone_set(
        "sil AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW B CH D DH F G HH JH K L M N NG P R S SH T TH "
        "V W Y Z ZH"
    ),
    "es": _phone_set("sil AA EH EY IY OW UW B CH D DH F G JH K L M N P S T TH W Y RR X NY"),
    "de": _phone_set(
        "sil AA AH AO AW AY EH EY IH IY OW OY UH UW B D F G HH K L M N NG P S SH T V Y Z RR X UE"
    ),
    "fr": _phone_set("sil AA AH AO EH EY IY OW UW B D F G K L M N P S SH T V W Y Z ZH RR UE NY"),
    "it": _phone_set("sil AA AH AO EH EY IH IY OW UH UW B CH D F G JH K L M N NG P S SH T V W Y Z RR NY"),
}


def _check_language(language: str) -> Grammar:
    if language not in GRAMMARS:
        raise ValueError(
            f"no sentence grammar for language {language!r}; choose one of: {', '.join(LANGUAGES)}"
        )
    return GRAMMARS[language]


def _pick(rng: np.random.Generator, items: tuple):
    return items[int(rng.integers(len(items)))]


def _sentence(grammar: Grammar, rng: np.random.Generator) -> str:
    if rng.random() < _PANGRAM_PROBABILITY:
        return _pick(rng, grammar.pangrams)
    template = _pick(rng, grammar.templates)
    subject, gender = _pick(rng, grammar.subjects)
    masc, fem = _pick(rng, grammar.adjectives)
    slots = {
        "name": _pick(rng, grammar.names),
        "subject": subject,
        "verb": _pick(rng, grammar.verbs),
        "object": _pick(rng, grammar.objects),
        "adj": fem if gender == "f" else masc,
        "adverb": _pick(rng, grammar.adverbs),
        "place": _pick(rng, grammar.places),
        "number": str(int(rng.choice([2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 24, 37, 48, 99, 100, 365]))),
        "plural": _pick(rng, grammar.plurals),
    }
    text = template.format(**slots)
    return text[0].upper() + text[1:] if text[0] != "¿" else "¿" + text[1].upper() + text[2:]


def generate_sentences(language: str, n: int, rng: np.random.Generator) -> list[str]:
    """`n` sentences in `language`, distinct where the grammar allows, deterministic for `rng`'s state."""
    grammar = _check_language(language)
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator, e.g. numpy.random.default_rng(seed)")
    out: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        text = _sentence(grammar, rng)
        attempts += 1
        key = normalize_sentence(text)
        if key in seen and attempts < 20 * n:  # duplicates only once the grammar is exhausted
            continue
        seen.add(key)
        out.append(text)
    return out


def is_held_out(sentence: str, fraction: float = 0.1, salt: str = "") -> bool:
    """Whether a sentence belongs to the held-out set: a hash of its normalised text, so the same
    sentence is held out in every corpus and run (and with every voice) without keeping a list."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"held-out fraction must be in [0, 1], got {fraction!r}")
    key = f"{salt}|{normalize_sentence(sentence)}".encode()
    return zlib.crc32(key) / 2**32 < fraction
