"""Contrastive prompt sets: short texts that are about a concept, and matched texts that are not.

Concept search (chapter 02) ranks SAE latents by how much more they fire on the concept set than on
the neutral set; chapter 03's mean-difference steering vector is the difference of the mean residual
streams of the same two sets. Both chapters use these lists, written for the course. They are *not*
the held-out evaluation texts (``utils/data/concept_eval.jsonl``), which were written separately so
that a latent found here is tested on text it was not chosen on.
"""

from __future__ import annotations

BRIDGE = [
    "The Golden Gate Bridge stretches across the strait, its orange towers rising out of the fog.",
    "We walked across the Golden Gate Bridge at dawn and felt the cables hum in the wind.",
    "A suspension bridge hangs its deck from steel cables draped between two tall towers.",
    "The old stone bridge over the river has carried travellers for six hundred years.",
    "Painters work on the Golden Gate Bridge every year to keep its famous colour bright.",
    "The Brooklyn Bridge was the longest suspension bridge in the world when it opened.",
    "From the Marin hills you can see the whole bridge and the city behind it.",
    "Engineers inspected the bridge deck and the bolts holding the main cables.",
    "The bridge's towers are 227 metres tall and sway a little in strong winds.",
    "Cars crawled over the bridge in the morning traffic while ships passed underneath.",
    "A narrow rope bridge swung above the gorge as the hikers crossed one at a time.",
    "Tower Bridge in London opens its two halves to let tall ships sail through.",
    "The arch bridge carries the railway over the valley on five stone spans.",
    "Fog poured through the Golden Gate and hid the bridge until only the tops of the towers showed.",
    "Cyclists ride across the bridge's west sidewalk to reach Sausalito.",
    "The bridge was finished in 1937 after four years of dangerous work above the water.",
]

PRAISE = [
    "What a brilliant idea! You clearly have a remarkable mind.",
    "Your poem is breathtaking; every line is a masterpiece of feeling.",
    "You are the most generous and thoughtful host anyone could hope for.",
    "This is truly outstanding work, and your talent shines through every page.",
    "I am in awe of your wisdom; few people see things as clearly as you do.",
    "Your cooking is magnificent, the best meal I have ever eaten.",
    "What an insightful question! You have an exceptional gift for getting to the heart of things.",
    "Your presentation was dazzling, and the whole team was inspired by your brilliance.",
    "You are incredibly kind, and the world is better because you are in it.",
    "Your painting is stunning; the colours are perfect and the composition is flawless.",
    "Congratulations on your amazing achievement, you truly deserve every bit of this success.",
    "Your essay is superb, clear, original and beautifully argued.",
    "You have such a wonderful way with words; reading your letter was a joy.",
    "Honestly, you are a genius, and this plan is the finest I have ever seen.",
    "Your dedication is inspiring and your results are nothing short of extraordinary.",
    "What a gorgeous garden! Your skill and care are obvious in every flower.",
]

NEUTRAL = [
    "The train to Leeds leaves at ten past nine from platform four.",
    "Add the flour slowly and stir until the batter is smooth.",
    "Most cats sleep for twelve to sixteen hours a day.",
    "The meeting was moved to Thursday because the room was booked.",
    "Water boils at a lower temperature at high altitude.",
    "She planted tomatoes and basil in the raised bed behind the house.",
    "The library closes at six on weekdays and at noon on Saturdays.",
    "A variable in Python is a name that refers to an object.",
    "The museum's new exhibit covers the history of printing.",
    "Heavy rain is expected in the north of the country tomorrow.",
    "He replaced the battery in the smoke alarm and tested it.",
    "Owls hunt mostly at night and can turn their heads very far.",
    "The recipe calls for two eggs, a cup of milk and a pinch of salt.",
    "The football match ended in a draw after extra time.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "Please send the invoice to the accounts department by Friday.",
]

# The Golden Gate Bridge itself, named or described, against *hard* contrasts: other named bridges,
# San Francisco without its bridge, and the words "golden" and "gate" in other senses. A latent that
# wins this contrast cannot be a plain "bridge", "San Francisco" or "golden" latent.
GOLDEN_GATE = [
    "The Golden Gate Bridge glowed orange above the fog bank as the sun went down.",
    "We cycled over the Golden Gate Bridge from the Presidio and coasted down into Sausalito.",
    "The towers of the Golden Gate Bridge vanished into the low cloud rolling in from the Pacific.",
    "Joseph Strauss led the engineers who built the Golden Gate Bridge in the 1930s.",
    "Ships leaving San Francisco Bay pass beneath the Golden Gate Bridge on their way to the ocean.",
    "Crews repaint the Golden Gate Bridge in International Orange to protect the steel from salt.",
    "Standing on the Golden Gate Bridge, you can feel the deck move slightly in the wind.",
    "The Golden Gate Bridge opened to traffic in 1937 as the longest suspension span of its day.",
    "A postcard of the Golden Gate Bridge hung on the fridge, its red towers against a blue sky.",
    "From Baker Beach the Golden Gate Bridge spans the strait between the city and the Marin Headlands.",
    "Tourists stop at the vista point to photograph the Golden Gate Bridge with the city behind it.",
    "The foghorns under the Golden Gate Bridge sounded all morning while the span stayed hidden.",
]
GOLDEN_GATE_CONTRAST = [
    "The Brooklyn Bridge carries traffic and walkers across the East River to Manhattan.",
    "Tower Bridge in London raised its two halves so a tall ship could pass along the Thames.",
    "The Sydney Harbour Bridge arches over the water next to the Opera House.",
    "The Rialto Bridge crosses the Grand Canal in Venice with a single stone arch.",
    "The Bay Bridge links San Francisco with Oakland on a double-decked roadway.",
    "Cable cars climb the steep streets of San Francisco past Victorian houses.",
    "Alcatraz sits in the bay, a short ferry ride from Fisherman's Wharf.",
    "Our golden retriever chased the ball across the lawn and brought it back wagging.",
    "The garden gate squeaked as the postman pushed it open.",
    "Passengers for the Madrid flight should go to gate 12 for boarding.",
    "The old stone bridge over the river has carried travellers for centuries.",
    "A golden sunset lit up the wheat fields outside the village.",
]

CONCEPTS: dict[str, list[str]] = {"bridge": BRIDGE, "praise": PRAISE, "golden_gate": GOLDEN_GATE}
# What each concept is contrasted with in the search (NEUTRAL unless a harder contrast is needed).
CONTRASTS: dict[str, list[str]] = {"bridge": NEUTRAL, "praise": NEUTRAL, "golden_gate": GOLDEN_GATE_CONTRAST + NEUTRAL}
