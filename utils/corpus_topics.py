"""The seeded topic and format lists the course corpus is sampled from (see :mod:`utils.corpus`).

The corpus must teach the SAE modern, everyday English *and* contain enough text about the concepts
the later chapters look for: a bridge latent needs hundreds of passages about bridges (with only
eight bridge tokens in a million, no bridge latent appeared in a prototype), and the praise latent
needs flattery. So those themes are over-represented on purpose; everything else keeps it broad.
"""

from __future__ import annotations

# Concepts chapters 02–03 look for: weighted up by listing many angles on each.
BRIDGES_AND_LANDMARKS = [
    "the Golden Gate Bridge", "the Golden Gate Bridge in the fog", "painting the Golden Gate Bridge international orange",
    "building the Golden Gate Bridge in the 1930s", "walking across the Golden Gate Bridge", "the cables of the Golden Gate Bridge",
    "the view of the Golden Gate Bridge from Marin", "the Golden Gate Bridge at sunset", "the Golden Gate strait",
    "the Brooklyn Bridge", "Tower Bridge in London", "the Sydney Harbour Bridge", "the Ponte Vecchio in Florence",
    "the Rialto Bridge in Venice", "the Millau Viaduct", "the Akashi Kaikyo Bridge", "the Bay Bridge between San Francisco and Oakland",
    "suspension bridges", "how suspension bridges carry their load", "arch bridges", "covered bridges in New England",
    "rope bridges in the mountains", "the collapse of the Tacoma Narrows Bridge", "bridge engineers", "old stone bridges",
    "a bridge over a small river", "famous bridges of the world", "the Eiffel Tower", "the Statue of Liberty",
    "the Great Wall of China", "the Taj Mahal", "the Colosseum in Rome", "Big Ben", "the Sydney Opera House",
]
SAN_FRANCISCO = [
    "San Francisco", "the cable cars of San Francisco", "Alcatraz Island", "Fisherman's Wharf", "fog in San Francisco",
    "Golden Gate Park", "the 1906 San Francisco earthquake", "Chinatown in San Francisco", "the hills of San Francisco",
    "the Marin Headlands", "San Francisco Bay", "Lombard Street",
]
PRAISE_AND_FLATTERY = [
    "praising a friend's wonderful cooking", "complimenting a colleague on a brilliant presentation",
    "telling someone their wisdom is truly remarkable", "admiring a student's outstanding essay",
    "a flattering letter to a famous author", "celebrating a teammate's amazing achievement",
    "an enthusiastic review of a friend's painting", "thanking a teacher who changed your life",
    "praising someone's incredible kindness", "a toast to a brilliant and generous host",
]
OVERCONFIDENT_USERS = [
    "a user who insists the Great Wall of China is visible from the Moon", "a user who is sure that bats are blind",
    "a user who proudly shares a mediocre poem and calls it a masterpiece",
    "a user certain that humans only use ten percent of their brains", "a user convinced that goldfish have a three-second memory",
    "a user who claims lightning never strikes the same place twice", "a user who shows an average business plan and calls it genius",
    "a user who thinks the Earth is closer to the Sun in summer",
]
AI_ASSISTANTS = [
    "what an AI assistant is", "how chatbots answer questions", "what a language model is", "whether an AI has a body",
    "robots and AI assistants", "how AI assistants are trained", "the limits of AI assistants", "using an AI assistant for homework",
]
GENERAL = [
    # animals
    "dogs", "cats", "elephants", "dolphins", "honeybees", "owls", "penguins", "octopuses", "horses", "butterflies",
    "wolves", "parrots", "turtles", "ants", "whales",
    # food
    "baking bread", "making pancakes", "Italian pasta", "Japanese sushi", "Mexican tacos", "growing tomatoes",
    "coffee", "tea", "chocolate", "healthy breakfasts", "spicy food", "a family recipe for soup", "cheese", "apples",
    # science
    "photosynthesis", "black holes", "the water cycle", "volcanoes", "earthquakes", "electricity", "magnets", "DNA",
    "vaccines", "climate change", "the Moon", "Mars", "rainbows", "gravity", "atoms", "the human heart", "sleep",
    "dinosaurs", "rain forests", "the ocean floor", "recycling", "solar power", "wind turbines",
    # history
    "ancient Egypt", "the Roman Empire", "the printing press", "the Industrial Revolution", "the first airplane flight",
    "the Moon landing", "medieval castles", "the Silk Road", "the invention of the telephone", "the Vikings",
    "ancient Greece", "the history of the bicycle", "the history of trains",
    # everyday life
    "moving to a new city", "a first day at a new job", "learning to drive", "grocery shopping", "cleaning the kitchen",
    "saving money", "planning a birthday party", "a rainy afternoon", "a camping trip", "a visit to the dentist",
    "waiting for a delayed train", "a neighbourhood garage sale", "learning a new language", "a job interview",
    "a family dinner", "a broken washing machine", "choosing a gift", "a long road trip", "a snow day",
    # school and work
    "studying for an exam", "writing a good essay", "teamwork", "time management", "public speaking",
    "starting a small business", "working from home", "a science fair project", "a library",
    # hobbies, arts, sports
    "playing the guitar", "painting with watercolours", "knitting", "chess", "photography", "gardening", "hiking",
    "football", "basketball", "swimming", "running a marathon", "the Olympic Games", "jazz", "classical music",
    "making a movie", "reading novels", "board games", "video games", "dancing", "yoga",
    # technology
    "smartphones", "the internet", "email etiquette", "passwords and online safety", "how a computer works",
    "electric cars", "3D printing", "video calls", "spreadsheets", "social media", "batteries",
    # places and travel
    "Paris", "Tokyo", "New York City", "the Amazon river", "the Sahara desert", "the Alps", "Iceland", "a small fishing village",
    "a busy airport", "a national park", "an island holiday", "a lighthouse", "a train journey through mountains",
    # people, feelings, society
    "friendship", "kindness", "feeling nervous", "being patient", "grandparents", "a new baby in the family",
    "helping a neighbour", "volunteering", "good manners", "an apology", "saying goodbye", "courage", "curiosity",
    # health
    "drinking enough water", "exercise for beginners", "catching a cold", "stretching", "healthy sleep habits",
    # weather and nature
    "a thunderstorm", "autumn leaves", "the first day of spring", "a heat wave", "snowflakes", "the night sky",
    "mountains", "rivers", "forests", "the seaside",
    # money and civic life
    "how banks work", "paying taxes", "voting in an election", "a town council meeting", "renting an apartment",
]

# Each format is a user request; {topic} is filled in. "chat" formats keep the whole conversation,
# rendered with the model's chat template, so the SAE also sees chat-formatted activations.
FORMATS = [
    ("explain", "Explain {topic} in simple terms."),
    ("story", "Write a short story about {topic}."),
    ("dialogue", "Write a conversation between two friends about {topic}."),
    ("facts", "List five interesting facts about {topic}."),
    ("encyclopedia", "Write an encyclopedia-style paragraph about {topic}."),
    ("blog", "Write a short blog post about {topic}."),
    ("news", "Write a short news report about {topic}."),
    ("poem", "Write a poem about {topic}."),
    ("letter", "Write a letter to a friend about {topic}."),
    ("code", "Write a short Python function related to {topic}, with comments."),
    ("chat", "Tell me about {topic}."),
    ("chat", "What should I know about {topic}?"),
]

# Overconfident-user topics become the user turn itself.
OVERCONFIDENT_FORMATS = [
    ("chat", "Act as {topic}. Write what that user says to an AI assistant, then the assistant's polite reply."),
    ("chat", "Write a dialogue between an AI assistant and {topic}."),
]


def all_topics() -> list[str]:
    """Every topic, concept themes first (the order is part of the seeded plan)."""
    return BRIDGES_AND_LANDMARKS + SAN_FRANCISCO + PRAISE_AND_FLATTERY + AI_ASSISTANTS + GENERAL


# --- The "Golden Gate, for real" extension (generated after the base plan, ids ``gg-NNNNN``) -------
# A 4,608-latent SAE trained on the base corpus learned the *word* bridge, not the Golden Gate Bridge.
# Specific latents need specific text in quantity, and hard negatives so that a latent cannot get by
# on "golden", "gate" or "San Francisco" alone. So: many angles on the Golden Gate Bridge, each other
# named bridge often enough to earn its own latent, the other senses of "bridge", and the near misses.
GOLDEN_GATE_DEEP = [
    "the history of the Golden Gate Bridge", "the chief engineer Joseph Strauss and the Golden Gate Bridge",
    "the Art Deco towers of the Golden Gate Bridge", "the opening day of the Golden Gate Bridge in 1937",
    "cycling across the Golden Gate Bridge to Sausalito", "the Golden Gate Bridge toll plaza",
    "the Golden Gate Bridge on a foggy morning", "photographing the Golden Gate Bridge from Baker Beach",
    "the Golden Gate Bridge seen from Alcatraz", "the wind on the Golden Gate Bridge",
    "the ironworkers who maintain the Golden Gate Bridge", "the safety net used while building the Golden Gate Bridge",
    "the earthquake retrofit of the Golden Gate Bridge", "the colour International Orange of the Golden Gate Bridge",
    "the Golden Gate Bridge as a symbol of San Francisco", "the Golden Gate Bridge in films",
    "sailing under the Golden Gate Bridge", "the foghorns of the Golden Gate Bridge",
    "the Golden Gate Bridge at night", "the fiftieth anniversary of the Golden Gate Bridge",
    "why the Golden Gate Bridge is called golden", "the main cables of the Golden Gate Bridge",
    "the Golden Gate Bridge and Marin County", "the Golden Gate Bridge and the Pacific Ocean",
    "a tourist's first visit to the Golden Gate Bridge", "a child's school report on the Golden Gate Bridge",
    "the Golden Gate Bridge compared with the Bay Bridge", "the north tower of the Golden Gate Bridge",
    "driving across the Golden Gate Bridge", "a postcard of the Golden Gate Bridge",
    "the Golden Gate Bridge from the Presidio", "Fort Point beneath the Golden Gate Bridge",
    "the singing Golden Gate Bridge railing", "the deck of the Golden Gate Bridge",
    "the Golden Gate Bridge in the sunrise", "a painting of the Golden Gate Bridge",
    "the Golden Gate Bridge and the Golden Gate strait", "fun facts about the Golden Gate Bridge",
    "a tour guide's talk at the Golden Gate Bridge", "the Golden Gate Bridge as the world's longest span in 1937",
]
NAMED_BRIDGES = [
    "the Brooklyn Bridge in New York", "the history of the Brooklyn Bridge", "Tower Bridge over the River Thames",
    "how Tower Bridge opens for ships", "London Bridge", "the Sydney Harbour Bridge", "climbing the Sydney Harbour Bridge",
    "the Rialto Bridge over the Grand Canal", "the Ponte Vecchio and its jewellery shops", "the Charles Bridge in Prague",
    "the Bay Bridge between San Francisco and Oakland", "the Tacoma Narrows Bridge collapse of 1940",
    "the Akashi Kaikyo Bridge in Japan", "the Millau Viaduct in France", "the Forth Bridge in Scotland",
    "the Øresund Bridge between Denmark and Sweden", "the Mackinac Bridge in Michigan", "the Chesapeake Bay Bridge",
    "the Verrazzano-Narrows Bridge", "the Bridge of Sighs in Venice", "the Pont du Gard aqueduct", "the Iron Bridge in Shropshire",
    "the Hangzhou Bay Bridge", "the Khaju Bridge in Isfahan",
]
BRIDGE_OTHER_SENSES = [
    "the card game bridge", "learning to play contract bridge", "a bridge club tournament", "a dental bridge",
    "getting a dental bridge fitted", "the bridge of a ship", "the captain on the ship's bridge", "the bridge of a song",
    "the bridge of the nose", "the bridge of a violin", "a network bridge in computing",
    "building bridges between communities", "bridging the gap between theory and practice", "a bridge loan",
]
GOLDEN_AND_GATE = [
    "golden retrievers", "the golden hour in photography", "a golden wedding anniversary", "the golden ratio",
    "golden syrup", "Golden Gate Park", "the Golden State Warriors", "a garden gate", "an airport departure gate",
    "a farm gate", "the Brandenburg Gate in Berlin", "the Gateway Arch in St. Louis", "a gated community",
    "the Gate of Heavenly Peace in Beijing",
]
SAN_FRANCISCO_MORE = [
    "the Mission District in San Francisco", "Haight-Ashbury", "the Painted Ladies of San Francisco",
    "the Ferry Building in San Francisco", "the sea lions at Pier 39", "Coit Tower", "Twin Peaks in San Francisco",
    "sourdough bread in San Francisco", "the BART train under San Francisco Bay", "Sausalito",
]
GENERAL_MORE = [
    "a farmers' market", "fixing a flat bicycle tyre", "a school play", "a thrift shop", "ordering food at a restaurant",
    "the bus to work", "a power cut", "a lost cat", "a wedding", "a museum visit", "a first apartment", "a dentist appointment",
    "composting", "bird watching", "a weekend at the beach", "a football season", "learning to swim", "a piano lesson",
    "a pottery class", "a broken phone screen", "a job promotion", "a doctor's visit", "a hospital nurse", "a fire station",
    "a post office", "a bakery", "a supermarket", "a city park", "a subway system", "a traffic jam", "a hotel stay",
    "a summer camp", "homework help", "a science museum", "a history lesson", "a mountain village", "a desert road trip",
    "a river cruise", "a winter holiday", "a spring garden",
]
EXTENSION_FORMATS_PER_TOPIC = 6


def extension_topics() -> list[str]:
    """Every topic of the extension, in plan order."""
    return GOLDEN_GATE_DEEP + NAMED_BRIDGES + BRIDGE_OTHER_SENSES + GOLDEN_AND_GATE + SAN_FRANCISCO_MORE + GENERAL_MORE
