"""The LlamaIndex recipes of docs/llama_index.md end to end, with DEFAULT settings (only
``api_key`` and ``base_url``, pointing at the emulator process): a long document through
LlamaIndex's own splitter into three vector stores, the ingestion-pipeline recipe, image
documents indexed through ``Settings.embed_model``, video clips that keep their vectors in a
pipeline, copies and reloaded models, ``MultiModalVectorStoreIndex`` on Qdrant and Chroma,
and a mixed folder through the image reader.

The emulator's vectors are not semantic. What these tests rest on: the same input always
gives the same vector, an image is nearest to itself and to a resized copy of itself, and
texts sharing words are closer than texts sharing none.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex
from llama_index.core.bridge.pydantic import ValidationError
from llama_index.core.embeddings.loading import load_embed_model
from llama_index.core.indices import MultiModalVectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import (
    BaseNode,
    ImageNode,
    MetadataMode,
    NodeWithScore,
    TransformComponent,
)
from llama_index.core.settings import _Settings
from llama_index.core.vector_stores import SimpleVectorStore

from tongyi_vision import InputError, UnsupportedMediaError, estimate_text_tokens
from tongyi_vision.llama_index import (
    SkippedFileWarning,
    TongyiImageReader,
    TongyiVideoReader,
    TongyiVisionEmbedding,
)
from tongyi_vision.samples import draw_shape, generate_sample_video

if TYPE_CHECKING:
    from llama_index.vector_stores.chroma import ChromaVectorStore
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    from integration_tests.conftest import RunningEmulator

# Nothing here may talk to anything but the emulator on loopback (pytest-socket's marker:
# a connection anywhere else raises instead of leaving the machine).
pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

TOKEN_LIMIT = 1024  # the service's limit per text, by tongyi_vision.estimate_text_tokens

# Shapes in distinct colours, so that "nearest image" has one right answer.
PICTURES = {
    "red-circle.png": ((220, 30, 40), "circle"),
    "blue-square.png": ((30, 70, 200), "square"),
    "green-triangle.png": ((30, 160, 60), "triangle"),
}
TEXTS = [
    "A red bicycle leans against a brick wall in the morning sun.",
    "Blue ocean waves roll onto a quiet sandy beach.",
]

# A travel essay of about 21,000 characters: varied prose, with one stretch of timetables,
# prices and census figures. LlamaIndex's SentenceSplitter cuts at 1,024 tokens of ITS
# tokenizer (tiktoken); figures cost the service's tokenizer more than tiktoken's, so the
# chunk holding them is over 1,024 tokens by our estimate and must be embedded in pieces.
PARAGRAPHS = (
    "The harbour town of Kestrel Bay wakes before the sun does. Long before the first ferry "
    "sounds its horn, the bakers on Quay Street have lit their ovens, and the smell of rye and "
    "caraway drifts down to the water where the fishing boats are unloading. Most visitors "
    "arrive in summer, when the cliffs are loud with gulls and the cafes put their tables out "
    "on the cobbles, but the people who live here will tell you that the town is at its best "
    "in late October. The crowds have gone, the light turns the colour of weak tea, and the "
    "storms that roll in from the Atlantic make the lighthouse on Gull Point earn its keep.",
    "The lighthouse itself was built in 1847 by a committee of merchants who had lost three "
    "cargo ships on the reef in a single winter. Its first keeper, a former ship's carpenter "
    "named Elias Marrow, kept a journal that survives in the town library. He recorded the "
    "weather twice a day, the ships that passed, the price of lamp oil, and, with increasing "
    "frequency as the years went on, his opinions about the committee. In one entry from 1853 "
    "he complains that the new lens, ordered at great expense from a workshop in Paris, "
    "arrived with a crack running through its third prism, and that nobody would pay to "
    "replace it. The crack is still there, visible if you climb the ninety-two steps.",
    "Fishing has shaped every part of life in the bay. Until the middle of the twentieth "
    "century almost every family had someone at sea, and the rhythm of the year followed the "
    "movements of herring, mackerel and, later, crab and lobster. Children learned to mend "
    "nets before they learned to read. The chapel on the hill holds a wooden board painted "
    "with the names of the men who did not come home, the oldest letters so faded that the "
    "parish council had them repainted in 1961. Today only eleven boats work out of the "
    "harbour, most of them crewed by two people, and the catch is sold directly to "
    "restaurants in the city by refrigerated van.",
    "If you walk west along the coastal path, past the old lime kilns and the ruined "
    "coastguard cottages, you reach a headland covered in heather and gorse. In spring the "
    "gorse flowers a violent yellow and smells faintly of coconut, which surprises almost "
    "everyone who notices it. Skylarks nest in the grass, and the rangers put up small signs "
    "asking walkers to keep their dogs on a lead between March and July. On a clear day you "
    "can see the twin islands of Morrow and Little Morrow, uninhabited since the last farming "
    "family left in 1932, their stone walls still dividing the fields into neat rectangles "
    "that nobody has ploughed for nearly a century.",
    "Cooking in the region is plain and generous. The classic dish is a fish stew thickened "
    "with potatoes and flavoured with smoked bacon, bay leaves and a splash of cider; every "
    "household insists that its version is the correct one. Saffron buns are eaten at "
    "harvest festivals, a habit that local historians trace to the spice trade that once "
    "passed through the larger ports to the south. Cheese is made on three dairy farms inland, "
    "including a soft, nettle-wrapped round whose rind turns a dusty grey as it ripens. A "
    "small brewery opened in a former chandlery in 2014 and now produces a dark ale that sells "
    "out every August.",
    "Weather is the great subject of conversation. A farmer might tell you that the wind has "
    "backed to the south-west, that the swallows are flying low, and that you should expect "
    "rain before evening, and he will usually be right. Meteorologists explain the climate "
    "more formally: the Gulf Stream keeps winters mild, frost is rare at sea level, and the "
    "prevailing westerlies bring an average of one hundred and ninety wet days a year. Fog is "
    "common in early summer, when warm air slides over the cold water, and it can swallow the "
    "whole bay in a matter of minutes, leaving only the mournful call of the foghorn to mark "
    "where the headland stands.",
    "The railway reached the town in 1879, and with it came the first tourists. A Victorian "
    "guidebook described the bay as a place of wholesome air and picturesque poverty, a phrase "
    "that still annoys the members of the local history society. Hotels were built along the "
    "esplanade, bathing machines were rolled down to the sand, and a pier was constructed with "
    "a bandstand at its end. The pier burned down in 1923 after a fire started in a tea room, "
    "and only its iron piles remain, standing in two crooked lines at low tide. Cormorants "
    "dry their wings on them in the afternoons.",
    "Geologists love the cliffs for a different reason. The rocks record a collision between "
    "ancient continents, and the folds in the slate are so tight that in places the layers "
    "stand on end. Fossil hunters come after winter storms to search the scree for trilobites "
    "and the delicate imprints of sea lilies. The rules are simple: collect only what has "
    "already fallen, never hammer at the cliff face, and check the tide tables before you set "
    "out. Every few years someone ignores the last rule and has to be rescued by the lifeboat "
    "crew, who are volunteers and who will, once you are safely ashore, make their feelings "
    "about the matter very clear.",
    "The lifeboat station is one of the proudest institutions in the town. Its crew of "
    "twenty-four includes a plumber, two teachers, a retired nurse, a software developer who "
    "works remotely for a company in Berlin, and the owner of the fish and chip shop. When the "
    "pagers go off, they drop whatever they are doing and run. Launches happen perhaps forty "
    "times a year, most often for yachts with engine trouble or walkers cut off by the tide, "
    "but the station's records include dramatic rescues from cargo ships and, in 1987, a "
    "helicopter that ditched in the sea two miles offshore. All four of its passengers survived.",
    "Artists have painted the bay for more than a century. In the 1890s a group of young "
    "painters rented studios above the net lofts and set out to capture working life as it "
    "really was: women gutting fish on the quay, men hauling boats above the tideline, "
    "children playing among lobster pots. Their canvases now hang in national galleries, and "
    "prints of them are sold in every gift shop. A new generation of artists arrived in the "
    "1960s, drawn by cheap rents and the quality of the light, and some of their abstract "
    "seascapes, all slabs of grey and sudden streaks of blue, are just as well known.",
    "The local school has one hundred and thirty pupils and a reputation for music. Its brass "
    "band has won the county championship six times, and every December it marches through the "
    "streets playing carols, followed by a crowd carrying lanterns made from paper and willow. "
    "The headteacher, who grew up in the town, says that the band teaches children things no "
    "classroom can: patience, the discipline of practice, and how to listen to the people "
    "around you. The instruments are old, some of them dented from decades of use, and the "
    "parents hold a raffle each spring to pay for repairs.",
    "Housing has become a source of tension. Over the last twenty years many cottages in the "
    "old town have been bought as holiday homes, and in winter whole streets stand dark. Young "
    "people who grew up here struggle to find anywhere they can afford to rent, and some have "
    "moved inland or to the city. The council has experimented with a higher tax on second "
    "homes and with a small development of affordable houses on the edge of town, built by a "
    "community land trust. The first twelve families moved in last year, and the waiting list "
    "for the next phase already runs to several dozen names.",
    "Wildlife in the bay is richer than most visitors realise. Grey seals haul out on the rocks "
    "below the lighthouse, and in late autumn their pups can be seen from the cliff path, white "
    "and woolly and surprisingly loud. Dolphins pass through most summers, and basking sharks, "
    "enormous but harmless, cruise slowly along the surface on calm days, feeding on plankton. "
    "Volunteers from a marine conservation charity count them from a hut on the headland and "
    "upload their observations to a national database. Their records show that sightings of "
    "some species have risen sharply as the sea has warmed.",
    "The church of Saint Petroc stands at the top of a steep lane, its granite tower visible "
    "from almost anywhere in the town. Parts of the nave date from the fourteenth century, and "
    "the carved bench ends show mermaids, sea monsters, a ship in full sail and a man who "
    "appears to be arguing with a fish. The bells were recast in 1902 and are rung every Sunday "
    "by a team whose youngest member is fourteen and whose oldest is eighty-seven. Visitors are "
    "welcome to climb the tower on open days, but the ladder to the bell chamber is not for "
    "anyone who dislikes heights.",
    "Every August the town holds a regatta that has been running, with interruptions for two "
    "world wars and a pandemic, since 1868. There are races for rowing gigs, sailing dinghies "
    "and, in recent years, paddle boards. The highlight is the crab-catching competition for "
    "children, which takes place off the harbour wall with lines, bacon and buckets. Every "
    "crab is measured, admired and put back. In the evening there is a procession of decorated "
    "boats and a firework display that can be seen from the next village, whose residents "
    "claim, not entirely seriously, that their own fireworks are better.",
    "Practical information for visitors changes little from year to year. Trains leave for "
    "the junction at 06:52, 08:17, 10:44, 13:09, 16:26 and 20:31, and the journey takes 23 "
    "minutes; a return ticket costs 7.80 pounds, or 5.15 with a railcard. High water at the "
    "harbour on the first Saturday of October falls at 05:48 (4.92 m) and 18:11 (5.07 m), low "
    "water at 12:03 (0.61 m). The tourist office on 14 Fore Street opens 09:30 to 17:00 from "
    "1 April to 31 October, telephone 01736 795 214, and the lighthouse climbs run at 10:15, "
    "11:45, 14:00 and 15:30, for 4.50 an adult and 2.25 a child under 16.",
    "Parking is the other question everyone asks. The long-stay car park behind the station "
    "has 218 spaces and charges 1.60 for the first hour, 6.40 for four hours and 11.90 for the "
    "day, while the 46 spaces on the harbour front are limited to 2 hours between 08:00 and "
    "18:00 from 15 May to 30 September. Permits for residents cost 37.50 a year. The 14A bus "
    "stops at the top of Chapel Hill at 07:05, 09:35, 12:20, 15:50 and 18:40 on weekdays, and "
    "at 10:10 and 14:25 on Sundays; the fare to the market town 11 miles away is 3.70 single "
    "or 5.90 return, and children under 5 travel free.",
    "The parish records give a sense of scale. In 1801 the census counted 1,342 inhabitants; "
    "by 1851 there were 2,917, by 1901 some 3,486, and by 1951 only 2,604, after the mines had "
    "closed and the herring had gone. The 2021 census recorded 2,138 residents in 1,264 "
    "households, of which 387 were second homes or holiday lets. The median age rose from 41.2 "
    "in 2001 to 52.7 in 2021, and the share of residents over 65 from 19.8 per cent to 31.4 "
    "per cent. Average house prices, 61,500 pounds in 1999, had reached 347,800 by 2023.",
    "Transport remains a challenge. The branch line still runs, but only six trains a day, and "
    "the last one leaves at half past eight in the evening. Buses serve the villages along the "
    "coast, though the timetable thins out in winter. Many residents depend on their cars, and "
    "the narrow streets of the old town were never designed for them. A scheme to close the "
    "harbour front to traffic during the summer months was bitterly debated at three public "
    "meetings before being approved by a narrow vote. Shopkeepers who opposed it now admit that "
    "trade has, on the whole, improved.",
    "The town library occupies a former bank, and the old vault, with its heavy steel door, now "
    "holds the local archive. Among its treasures are Elias Marrow's journals, a collection of "
    "shipping registers, maps drawn by the Admiralty surveyors in the 1820s and several hundred "
    "photographs on glass plates. A small team of volunteers is digitising the photographs, "
    "scanning each plate at high resolution and writing a short description of what it shows. "
    "They often ask older residents to help identify the people in the pictures, and those "
    "sessions tend to run long, full of stories and arguments about who married whom.",
    "Climate change is not an abstraction here. Sea levels have risen by about fifteen "
    "centimetres since the harbour walls were last rebuilt, and the highest tides now spill "
    "over the quay several times each winter. Engineers have proposed raising the walls and "
    "installing flood gates at the mouth of the harbour, a project that would cost tens of "
    "millions and take years to complete. In the meantime, shopkeepers on the front keep "
    "sandbags ready and have moved their electrical sockets higher up the walls. The insurance "
    "premiums, they say, are rising faster than the water.",
    "Small businesses keep the town alive through the quiet months. There is a bookshop that "
    "specialises in maritime history and detective novels, a hardware store that seems to "
    "stock every object ever manufactured, a barber who has cut the hair of three generations "
    "of the same families, and a bicycle repair workshop run by two sisters who also lead "
    "guided rides into the hills. Most of these shops close on Wednesday afternoons, a custom "
    "that dates back to an agreement among traders in the 1950s and that nobody has ever seen "
    "a good reason to abandon.",
    "Walking inland, away from the sea, the landscape changes quickly. Steep lanes climb "
    "between high hedges full of foxgloves and honeysuckle, and the fields are small and "
    "irregular, enclosed by stone walls that may be a thousand years old. Old tin mines dot "
    "the moorland, their engine houses standing roofless against the sky, their chimneys "
    "still upright after a century of gales. The mines closed when the price of tin collapsed, "
    "and thousands of miners emigrated to South Africa, Australia and the Americas, taking "
    "their skills, their hymns and their pasties with them.",
    "Those emigrants kept in touch. The archive holds hundreds of letters sent home from mining "
    "camps in Nevada, Ballarat and the Transvaal, describing heat, dust, homesickness, wages "
    "and, occasionally, fortunes made and lost. Descendants still visit, clutching family "
    "trees and photographs, hoping to find the cottage where a great-great-grandmother was "
    "born. The librarian keeps a folder of the most common surnames and can usually point "
    "them towards the right parish register. Now and then a visitor discovers a cousin they "
    "never knew they had, living three streets away.",
    "Night in the bay has its own character. Once the pubs have closed, the streets fall "
    "silent except for the halyards clinking against the masts in the harbour. Because there "
    "is little light pollution, the sky on a clear night is astonishing: the Milky Way spreads "
    "from one horizon to the other, and during the August meteor shower people lie on the "
    "beach wrapped in blankets, counting shooting stars. An amateur astronomy club meets in "
    "the village hall once a month, and its members will happily let anyone look through "
    "their telescopes at the rings of Saturn or the craters of the moon.",
    "The future of the town is uncertain, as it is for many small coastal places. Tourism "
    "brings money but also traffic, rising house prices and a workforce that disappears every "
    "autumn. Fishing is smaller than it has ever been. Yet there are signs of renewal: a "
    "marine research station has opened in the old customs house, remote workers have settled "
    "in the terraces behind the harbour, and the community land trust is planning its second "
    "phase. Whatever happens, the lighthouse will keep turning, its cracked prism throwing the "
    "beam out across the reef, as it has every night since 1847.",
    "Sport in the town revolves around the water and the rugby pitch. The rugby club fields "
    "three men's teams and a women's side that reached the regional final two seasons ago, "
    "losing by a single try in a match that is still discussed in the clubhouse. Swimmers meet "
    "at the slipway at seven every morning, all year round, and in January they hold a charity "
    "dip in fancy dress. The sailing club runs lessons for beginners on Saturday mornings, and "
    "the gig rowers train on summer evenings, six oars dipping in time as the coxswain shouts "
    "encouragement that carries clearly across the harbour.",
    "Health care depends on a surgery with three doctors and a pharmacy that doubles as an "
    "informal advice centre. The nearest hospital with an emergency department is forty "
    "minutes away by road, longer when the summer traffic is heavy, and an air ambulance lands "
    "on the school playing field several times a year. Residents raised money for a "
    "defibrillator outside the post office and another at the lifeboat station, and the first "
    "aid courses run by the volunteers are always fully booked. The retired nurse on the "
    "lifeboat crew teaches most of them.",
    "Language is layered here. Street names, farms and headlands carry words from an older "
    "Celtic tongue that was spoken along this coast until the eighteenth century, and a small "
    "revival movement now teaches it in evening classes. Pol means pool, tre means homestead, "
    "and porth means cove or landing place, so a walker with a little vocabulary can read the "
    "map as a description of the land. Older fishermen also use dialect words for winds, "
    "currents and kinds of weather that appear in no dictionary and are slowly being written "
    "down by a retired teacher with a notebook.",
    "Markets have been held on the square since a royal charter granted the right in 1312. "
    "Today the market runs every Friday morning, and it is a good place to see the town's "
    "economy in miniature: vegetables from the inland farms, fish from the morning's catch, "
    "jars of honey and chutney, secondhand books, knitted hats, and a man who sharpens knives "
    "on a pedal-powered grindstone. The stallholders know one another well enough to mind each "
    "other's tables, and on a wet morning they gather under the arcade of the old market hall "
    "to drink coffee from a flask and complain about the council.",
    "Gardens thrive in the mild climate. Palms, tree ferns and agapanthus grow in the sheltered "
    "valleys, and a subtropical garden created by a Victorian plant collector is open to the "
    "public from March to October. Its head gardener oversees a team of four and an army of "
    "volunteers who weed, prune and propagate. The collector's notebooks record seeds shipped "
    "home from the Himalayas, New Zealand and the Andes, some packed in charcoal, some in moss, "
    "and a surprising number of them still survive as mature trees, their trunks thick with "
    "lichen and their branches full of nesting birds.",
    "Winter brings its own entertainment. The amateur dramatic society stages a pantomime in "
    "the village hall each January, with a cast of forty and a script rewritten every year to "
    "include jokes about local events. The audience knows its part well: booing the villain, "
    "shouting warnings to the hero, and singing along when the words are lowered from the "
    "ceiling on a painted board. Tickets sell out within an hour of going on sale, and the "
    "profits pay for the hall's heating, which in an old building with draughty windows is no "
    "small sum.",
    "The harbour master has one of the most varied jobs in town. She allocates moorings, "
    "collects dues, inspects the walls after storms, liaises with the coastguard, and settles "
    "disputes between fishermen and pleasure boaters over who may tie up where. In summer her "
    "office is besieged by visitors asking about boat trips, tide times and the best place to "
    "see seals. In winter she spends long hours on maintenance, checking chains, replacing "
    "fenders and arranging for the dredger to clear the silt that gathers at the harbour mouth "
    "after every big storm.",
    "Food writers have discovered the bay, and a handful of restaurants now draw customers from "
    "far away. The best known occupies a former pilchard cellar, its tables set among the "
    "granite pillars where fish were once pressed and salted in barrels. The chef buys directly "
    "from the boats and changes the menu every day depending on the catch. Locals are proud of "
    "the attention but wary of it too, and many still prefer the cafe on the corner, where a "
    "bacon sandwich and a mug of strong tea cost less than a starter at the famous place.",
    "Perhaps the most remarkable thing about the bay is how much of its history is still "
    "visible. You can stand on the quay and see the lime kilns, the net lofts, the pilchard "
    "cellars, the railway station, the holiday cottages and the new research station, each "
    "representing a different chapter of the town's story. None of them has entirely "
    "replaced the others. The place has adapted again and again, to the loss of the mines, the "
    "decline of the herring, the arrival of the tourists and the rising sea, and it seems "
    "likely that it will go on adapting for as long as there is a harbour to shelter in.",
    "Visitors who want to understand the place are usually given the same advice by the people "
    "who live here. Come out of season, walk rather than drive, talk to the people behind the "
    "counter, and do not be in a hurry. Buy a pasty from the bakery on Quay Street and eat it "
    "on the harbour wall while the boats come in. Climb the lighthouse, visit the library, "
    "and read a few pages of Elias Marrow's journal. Then sit on the headland for an hour and "
    "watch the weather change. By the time you leave, you will have your own opinions about "
    "the committee.",
)
LONG_TEXT = "\n\n".join(PARAGRAPHS)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b)))


def norm(vector: Sequence[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in vector))


def embed_text(node: BaseNode) -> str:
    return node.get_content(metadata_mode=MetadataMode.EMBED)


def file_names(results: Sequence[NodeWithScore]) -> list[str]:
    return [str(r.node.metadata["file_name"]) for r in results]


# --- fixtures ---


@pytest.fixture
def embedding(emulator: RunningEmulator) -> Iterator[TongyiVisionEmbedding]:
    """The model with default settings: only the key and the emulator's URL."""
    model = TongyiVisionEmbedding(api_key=emulator.api_key, base_url=emulator.base_url)
    yield model
    model.close()


@pytest.fixture
def settings(embedding: TongyiVisionEmbedding) -> Iterator[_Settings]:
    """LlamaIndex's global Settings with ``embed_model`` set to ``embedding`` (so it never
    resolves to the OpenAI default, which would try the network); every field is put back
    as it was when the test ends."""
    saved = {f.name: getattr(Settings, f.name) for f in dataclasses.fields(Settings)}
    Settings.embed_model = embedding
    try:
        yield Settings
    finally:
        for name, value in saved.items():
            setattr(Settings, name, value)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three PNGs; ``queries/`` beside it holds half-size copies of each."""
    root = tmp_path_factory.mktemp("recipes-media")
    folder, queries = root / "pictures", root / "queries"
    folder.mkdir()
    queries.mkdir()
    for name, (colour, shape) in PICTURES.items():
        draw_shape(shape, colour, 160).save(folder / name)
        draw_shape(shape, colour, 80).save(queries / name)
    return folder


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s of video: three 4 s segments, the middle one a checkerboard."""
    folder = tmp_path_factory.mktemp("recipes-footage")
    return generate_sample_video(folder / "moments.mp4", 12.0, segment_seconds=4.0, patterned={1})


@contextmanager
def text_storage(kind: str, dimension: int) -> Iterator[StorageContext]:
    """A storage context on LlamaIndex's default store, in-memory Qdrant, or ephemeral Chroma."""
    if kind == "simple":
        yield StorageContext.from_defaults()
    elif kind == "qdrant":
        with qdrant_client() as client:
            store = qdrant_store(client, "long-text", dimension)
            yield StorageContext.from_defaults(vector_store=store)
    else:
        with chroma_client() as (client, new_collection):
            yield StorageContext.from_defaults(vector_store=chroma_store(new_collection()))


@contextmanager
def qdrant_client() -> Iterator[QdrantClient]:
    from qdrant_client import QdrantClient

    client = QdrantClient(location=":memory:")
    try:
        yield client
    finally:
        client.close()


def qdrant_store(client: QdrantClient, name: str, dimension: int) -> QdrantVectorStore:
    """A Qdrant store on a collection created for ``dimension``: Qdrant fixes a collection's
    vector size when it is made (LlamaIndex would otherwise take it from the first vector)."""
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client.models import Distance, VectorParams

    # "text-dense" is the vector name llama-index-vector-stores-qdrant uses.
    vectors = {"text-dense": VectorParams(size=dimension, distance=Distance.COSINE)}
    client.create_collection(name, vectors_config=vectors)
    return QdrantVectorStore(client=client, collection_name=name)


@contextmanager
def chroma_client() -> Iterator[tuple[Any, Callable[[], Any]]]:
    """An in-memory Chroma client without telemetry, and a maker of fresh collections (the
    ephemeral clients of one process share their collections: each gets a unique name, and
    is deleted afterwards)."""
    import chromadb

    client = chromadb.EphemeralClient(settings=chromadb.config.Settings(anonymized_telemetry=False))
    names: list[str] = []

    def new_collection() -> Any:
        names.append(f"tongyi-{uuid.uuid4().hex}")
        # embedding_function=None: Chroma's default would be a local ONNX model it downloads.
        # Cosine space: Chroma's default is L2.
        return client.create_collection(
            names[-1], embedding_function=None, metadata={"hnsw:space": "cosine"}
        )

    try:
        yield client, new_collection
    finally:
        for name in names:
            client.delete_collection(name)


def chroma_store(collection: Any) -> ChromaVectorStore:
    from llama_index.vector_stores.chroma import ChromaVectorStore

    return ChromaVectorStore(chroma_collection=collection)


# --- 1. a long document through LlamaIndex's splitter, into three stores ---


@pytest.mark.parametrize("store", ["simple", "qdrant", "chroma"])
def test_a_long_document_split_by_sentence_splitter_is_indexed_and_retrieved(
    settings: _Settings, embedding: TongyiVisionEmbedding, store: str
) -> None:
    assert len(LONG_TEXT) > 20_000
    assert len(set(PARAGRAPHS)) == len(PARAGRAPHS)
    document = Document(text=LONG_TEXT)
    chunks = [embed_text(n) for n in SentenceSplitter().get_nodes_from_documents([document])]
    over = [c for c in chunks if estimate_text_tokens(c) > TOKEN_LIMIT]
    # LlamaIndex's 1,024 tokens are not ours: at least one chunk is over the service's limit.
    assert over, [estimate_text_tokens(c) for c in chunks]

    with text_storage(store, embedding.dimension or 0) as storage:
        index = VectorStoreIndex.from_documents(
            [document], transformations=[SentenceSplitter()], storage_context=storage
        )
        # Settings.embed_model did the embedding, splitting each over-long chunk in pieces.
        assert embedding.usage.requests > 0
        assert embedding.usage.pieces >= 2 * len(over)
        query = "the lighthouse keeper's journal and the cracked prism of the lens"
        results = index.as_retriever(similarity_top_k=3).retrieve(query)

    # The store ranks the chunks as their vectors say: the same ranking computed here.
    vectors = embedding.get_text_embedding_batch(chunks)
    wanted = embedding.get_query_embedding(query)
    ranked = sorted(range(len(chunks)), key=lambda i: cosine(wanted, vectors[i]), reverse=True)
    assert [embed_text(r.node) for r in results] == [chunks[i] for i in ranked[:3]]
    assert all(len(v) == embedding.dimension for v in vectors)


# --- 2. the docs' IngestionPipeline recipe on the same document ---


def test_the_ingestion_pipeline_recipe_embeds_every_chunk_of_a_long_document(
    embedding: TongyiVisionEmbedding,
) -> None:
    pipeline = IngestionPipeline(transformations=[SentenceSplitter(), embedding])

    nodes = pipeline.run(documents=[Document(text=LONG_TEXT)])

    assert len(nodes) >= 5
    for node in nodes:
        assert node.embedding is not None
        assert len(node.embedding) == embedding.dimension == 768
    assert embedding.usage.pieces > 0
    over = [n for n in nodes if estimate_text_tokens(embed_text(n)) > TOKEN_LIMIT]
    assert over
    for node in over:
        # The mean of the pieces, scaled back to unit length; the same as embedding it alone.
        assert node.embedding is not None
        assert norm(node.embedding) == pytest.approx(1.0, abs=1e-9)
        assert node.embedding == embedding.get_text_embedding(embed_text(node))

    # The index keeps the vectors the pipeline set: nothing is embedded again.
    requests = embedding.usage.requests
    index = VectorStoreIndex(nodes, embed_model=embedding)
    assert embedding.usage.requests == requests
    found = index.as_retriever(similarity_top_k=1).retrieve("trains, tide times and parking")
    assert "06:52" in found[0].node.get_content()


# --- 3. image documents through Settings.embed_model and VectorStoreIndex ---


def stored_image_vectors(index: VectorStoreIndex) -> dict[str, list[float]]:
    """The vectors in the index's (default, in-memory) store, by the image's file path."""
    store = index.vector_store
    assert isinstance(store, SimpleVectorStore)
    return {
        str(index.docstore.get_node(node_id).metadata["file_path"]): vector
        for node_id, vector in store.data.embedding_dict.items()
    }


@pytest.mark.parametrize("transformations", ["default", "empty list"])
def test_image_documents_indexed_through_settings_hold_the_image_vectors(
    settings: _Settings,
    embedding: TongyiVisionEmbedding,
    emulator: RunningEmulator,
    pictures: Path,
    transformations: str,
) -> None:
    documents = TongyiImageReader().load_data(pictures)
    assert [d.text for d in documents] == [""] * len(PICTURES)
    assert all(len(d.metadata["sha256"]) == 64 for d in documents)

    if transformations == "default":
        index = VectorStoreIndex.from_documents(documents)
    else:
        # (LlamaIndex reads `transformations or Settings.transformations`: [] means default.)
        index = VectorStoreIndex.from_documents(documents, transformations=[])

    stored = stored_image_vectors(index)
    assert sorted(stored) == sorted(str(pictures.resolve() / name) for name in PICTURES)
    for path, vector in stored.items():
        assert vector == embedding.get_image_embedding(path)
        assert vector != embedding.get_text_embedding(f"file_name: {Path(path).name}")

    # A query that is a file:// URI is refused by default, before anything is sent...
    uri = (pictures / "blue-square.png").resolve().as_uri()
    requests = embedding.usage.requests
    with pytest.raises(InputError, match="read_query_files"):
        index.as_retriever().retrieve(uri)
    assert embedding.usage.requests == requests

    # ... and with read_query_files=True it is a query by that image, which comes first.
    reading = TongyiVisionEmbedding(
        api_key=emulator.api_key, base_url=emulator.base_url, read_query_files=True
    )
    with reading:
        for name in PICTURES:
            target = (pictures / name).resolve().as_uri()
            found = index.as_retriever(similarity_top_k=3, embed_model=reading).retrieve(target)
            assert file_names(found)[0] == name
            assert (found[0].score or 0.0) == pytest.approx(1.0, abs=1e-6)
            assert (found[1].score or 0.0) < 0.9


def test_image_documents_indexed_without_any_transformation_hold_the_image_vectors(
    settings: _Settings,
    embedding: TongyiVisionEmbedding,
    pictures: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # With no node parser at all (Settings.transformations = [], or VectorStoreIndex(documents))
    # the documents themselves are the nodes: their own embed content must be the URI, or
    # LlamaIndex drops them ("Some nodes are missing content, skipping them...").
    settings.transformations = []
    documents = TongyiImageReader().load_data(pictures)

    index = VectorStoreIndex.from_documents(documents)

    assert "missing content" not in capsys.readouterr().out
    stored = stored_image_vectors(index)
    assert sorted(stored) == sorted(str(pictures.resolve() / name) for name in PICTURES)
    for path, vector in stored.items():
        assert vector == embedding.get_image_embedding(path)
    # what the index embeds is each document's own content: its URI alone
    assert [embed_text(d) for d in documents] == [d.metadata["image_uri"] for d in documents]


# --- 4. video clips in an IngestionPipeline keep their vectors ---


def test_video_clips_keep_their_vectors_in_an_ingestion_pipeline(
    emulator: RunningEmulator, embedding: TongyiVisionEmbedding, footage: Path
) -> None:
    documents = TongyiVideoReader(embedding, clip_seconds=4.0).load_data(footage)
    source = footage.resolve().as_uri()
    assert [d.metadata["clip_uri"] for d in documents] == [
        f"{source}#t=0,4",
        f"{source}#t=4,8",
        f"{source}#t=8,12",
    ]
    clip_vectors: dict[str, list[float]] = {}
    for document in documents:
        assert document.embedding is not None
        assert len(document.embedding) == embedding.dimension
        clip_vectors[document.metadata["clip_uri"]] = list(document.embedding)
    assert len({tuple(v) for v in clip_vectors.values()}) == 3  # three different clips

    pipelines: list[list[TransformComponent]] = [[embedding], [SentenceSplitter(), embedding]]
    requests, used = emulator.stats()["requests"], embedding.usage.requests
    for transformations in pipelines:
        pipeline = IngestionPipeline(transformations=transformations)
        nodes = pipeline.run(documents=copy.deepcopy(documents))
        assert len(nodes) == len(documents)
        assert {n.metadata["clip_uri"]: n.embedding for n in nodes} == clip_vectors
    # No clip was embedded again, by this model or any other path to the emulator.
    assert emulator.stats()["requests"] == requests
    assert embedding.usage.requests == used

    # A clip without its vector is embedded again from its clip_uri, not from its text.
    for transformations in pipelines:
        stripped = copy.deepcopy(documents[1])
        stripped.embedding = None
        before = emulator.stats()["requests"]
        (node,) = IngestionPipeline(transformations=transformations).run(documents=[stripped])
        assert emulator.stats()["requests"] == before + 1
        assert node.embedding == clip_vectors[f"{source}#t=4,8"]
        metadata_text = node.get_metadata_str(MetadataMode.EMBED)
        assert metadata_text  # the file name and the times
        assert node.embedding != embedding.get_text_embedding(metadata_text)


# --- 5. copies and reloaded models ---


def test_a_deep_copy_and_a_reloaded_model_embed_the_same_vectors(
    emulator: RunningEmulator,
    embedding: TongyiVisionEmbedding,
    pictures: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text, image = "a red circle on a white page", str(pictures / "red-circle.png")
    text_vector, image_vector = (
        embedding.get_text_embedding(text),
        embedding.get_image_embedding(image),
    )

    copied = copy.deepcopy(embedding)
    assert isinstance(copied, TongyiVisionEmbedding)
    assert copied.client is not embedding.client  # its own connections
    assert (copied.model_name, copied.base_url, copied.dimension) == (
        embedding.model_name,
        embedding.base_url,
        embedding.dimension,
    )
    assert copied.get_text_embedding(text) == text_vector
    assert copied.get_image_embedding(image) == image_vector
    copied.close()
    # Closing the copy leaves the original working, sync and async.
    assert embedding.get_text_embedding(text) == text_vector
    assert len(embedding.get_query_embedding("after the copy closed")) == 768
    assert asyncio.run(embedding.aget_image_embedding(image)) == image_vector

    saved = embedding.to_dict()
    assert "api_key" not in saved
    assert emulator.api_key not in embedding.to_json()
    monkeypatch.setenv("EMPIRIOLABS_API_KEY", emulator.api_key)  # the openai dialect's key
    loaded = load_embed_model(saved)
    assert isinstance(loaded, TongyiVisionEmbedding)
    with loaded:
        assert (loaded.model_name, loaded.base_url, loaded.dialect, loaded.dimension) == (
            embedding.model_name,
            emulator.base_url,
            "openai",
            768,
        )
        assert loaded.get_text_embedding(text) == text_vector
        assert loaded.get_image_embedding(image) == image_vector

    # dimension is the resolved size and read-only; dimensions= is another name for it.
    assert embedding.dimension == 768
    with pytest.raises(ValidationError, match="frozen"):
        embedding.dimension = 512
    smaller = TongyiVisionEmbedding(
        api_key=emulator.api_key, base_url=emulator.base_url, dialect="dashscope", dimensions=512
    )
    with smaller:
        assert smaller.dimension == 512
        assert len(smaller.get_text_embedding(text)) == 512


# --- 6. MultiModalVectorStoreIndex on Qdrant and Chroma ---


@contextmanager
def multimodal_storage(
    kind: str, dimension: int
) -> Iterator[tuple[StorageContext, Callable[[str], dict[str, list[float]]]]]:
    """Text and image stores of one kind, and a reader of what a store holds (``"text"`` or
    ``"image"``): vectors by node id."""
    if kind == "qdrant":
        with qdrant_client() as client:
            names = {"text": "texts", "image": "images"}
            stores = {k: qdrant_store(client, name, dimension) for k, name in names.items()}

            def held(which: str) -> dict[str, list[float]]:
                points, _ = client.scroll(names[which], limit=100, with_vectors=True)
                vectors: dict[str, list[float]] = {}
                for point in points:
                    assert isinstance(point.vector, dict)  # named: {"text-dense": [...]}
                    dense = point.vector["text-dense"]
                    assert isinstance(dense, list)
                    vectors[str(point.id)] = [x for x in dense if isinstance(x, float)]
                    assert len(vectors[str(point.id)]) == len(dense)  # one vector, not many
                return vectors

            yield (
                StorageContext.from_defaults(
                    vector_store=stores["text"], image_store=stores["image"]
                ),
                held,
            )
    else:
        with chroma_client() as (_, new_collection):
            collections = {"text": new_collection(), "image": new_collection()}

            def held(which: str) -> dict[str, list[float]]:
                got = collections[which].get(include=["embeddings"])
                return {
                    i: [float(x) for x in e]
                    for i, e in zip(got["ids"], got["embeddings"], strict=True)
                }

            yield (
                StorageContext.from_defaults(
                    vector_store=chroma_store(collections["text"]),
                    image_store=chroma_store(collections["image"]),
                ),
                held,
            )


@pytest.mark.parametrize("store", ["qdrant", "chroma"])
def test_a_multimodal_index_on_vector_stores_finds_images_by_text_and_by_image(
    embedding: TongyiVisionEmbedding, pictures: Path, store: str
) -> None:
    documents = [*TongyiImageReader().load_data(pictures), *(Document(text=t) for t in TEXTS)]
    with multimodal_storage(store, embedding.dimension or 0) as (storage, held):
        index = MultiModalVectorStoreIndex.from_documents(
            documents, embed_model=embedding, image_embed_model=embedding, storage_context=storage
        )
        assert len(held("text")) == len(TEXTS)
        images = held("image")
        assert len(images) == len(PICTURES)
        # Each stored image vector is that image's (to float32 precision, as stores keep it).
        expected = [embedding.get_image_embedding(str(pictures / name)) for name in PICTURES]
        for vector in images.values():
            assert max(cosine(vector, e) for e in expected) > 0.99999
        retriever = index.as_retriever(similarity_top_k=1, image_similarity_top_k=len(PICTURES))

        by_text = retriever.text_to_image_retrieve("a red circle")
        by_image = {
            name: retriever.image_to_image_retrieve(str(pictures.parent / "queries" / name))
            for name in PICTURES
        }
        texts = retriever.text_retrieve("a red bicycle against a brick wall")

    assert all(isinstance(r.node, ImageNode) for r in by_text)
    assert sorted(file_names(by_text)) == sorted(PICTURES)
    for name, results in by_image.items():
        assert all(isinstance(r.node, ImageNode) for r in results)
        assert file_names(results)[0] == name
    assert [r.node.get_content() for r in texts] == [TEXTS[0]]


# --- 7. a mixed folder through the image reader ---


def test_a_mixed_folder_gives_one_warning_and_lists_every_skipped_file(
    pictures: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in PICTURES:
        (folder / name).write_bytes((pictures / name).read_bytes())
    skipped = ["chapter-1.txt", "chapter-2.txt", "notes.md", "prices.csv", "todo.txt"]
    for name, paragraph in zip(skipped, PARAGRAPHS, strict=False):
        (folder / name).write_text(paragraph + "\n")
    reader = TongyiImageReader()

    for _ in range(2):  # each load: one warning, and its own list of skipped files
        with pytest.warns(SkippedFileWarning) as caught:
            documents = reader.load_data(folder)

        assert len(caught) == 1
        message = str(caught[0].message)
        assert f"skipped {len(skipped)} files" in message
        assert "in .errors" in message
        assert sorted(d.metadata["file_name"] for d in documents) == sorted(PICTURES)
        assert sorted(Path(e.path).name for e in reader.errors) == skipped
        assert all(isinstance(e.error, UnsupportedMediaError) for e in reader.errors)

    quiet = TongyiImageReader(on_error="ignore")
    # Quietly (any warning would fail this test: warnings are errors), still listed.
    assert len(quiet.load_data(folder)) == len(PICTURES)
    assert len(quiet.errors) == len(skipped)
