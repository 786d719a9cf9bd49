//! Synthetic news for offline demos: topic templates filled from word lists, deterministic for a
//! seed (article `n` of seed `s` is always the same document, with id `syn-<s>-<n>`).

use crate::article::Article;

/// SplitMix64: tiny, fast, and stable across platforms and crate versions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

pub struct Topic {
    pub name: &'static str,
    titles: &'static [&'static str],
    sentences: &'static [&'static str],
}

pub const TOPICS: &[Topic] = &[
    Topic {
        name: "politics",
        titles: &[
            "{party} lawmakers unveil {bill} ahead of {month} vote",
            "{country} prime minister faces confidence vote over {policy}",
            "Governor of {region} signs {bill} into law",
            "Coalition talks in {country} stall over {policy}",
            "Senate committee delays hearing on {bill}",
        ],
        sentences: &[
            "The proposal, backed by {party} leaders, would overhaul {policy} for the first time in {num} years.",
            "Opposition members in {city} called the measure rushed and vowed to challenge it in court.",
            "A vote is expected on {weekday}, though several moderates have not said how they will vote.",
            "Polls published this week suggest {pct}% of voters support the plan.",
            "{person}, a senior adviser, said the government was confident it had the numbers.",
            "Critics argue the changes to {policy} would cost taxpayers {money} over the next decade.",
        ],
    },
    Topic {
        name: "business",
        titles: &[
            "{company} to cut {num}00 jobs as demand for {product} slows",
            "{company} agrees to buy rival in {money} deal",
            "{company} shares jump after quarterly profit beats forecasts",
            "Retail sales in {country} rise {pct}% in {month}",
            "{company} names {person} as new chief executive",
        ],
        sentences: &[
            "The company said revenue rose {pct}% to {money}, helped by strong sales of {product}.",
            "Analysts in {city} had expected a weaker quarter amid rising costs in the {sector} sector.",
            "The restructuring will close plants in {region} and move production to {country}.",
            "{person}, who has led the {sector} division since {year}, will take over on {weekday}.",
            "Executives said supply problems that hit {product} last year have largely eased.",
            "The deal still needs approval from competition regulators in {country}.",
        ],
    },
    Topic {
        name: "technology",
        titles: &[
            "{techco} unveils {techproduct} with on-device AI features",
            "{techco} fixes security flaw affecting millions of {device} users",
            "Startup building {techtopic} raises {money}",
            "{techco} outage disrupts {service} for hours",
            "Regulators in {country} open probe into {techco} over {techtopic}",
        ],
        sentences: &[
            "The new {techproduct} uses a custom chip that the company says is {num}% faster than its predecessor.",
            "Security researchers in {city} reported the vulnerability in {month}, and a patch is rolling out now.",
            "The startup says its approach to {techtopic} could cut data-centre energy use by {pct}%.",
            "Engineers traced the {service} outage to a faulty configuration change, the company said.",
            "{person}, an analyst who covers the chip industry, said demand for {techtopic} shows no sign of slowing.",
            "The software update will reach older {device} models over the coming weeks.",
        ],
    },
    Topic {
        name: "sports",
        titles: &[
            "{team} beat {team2} {score} to reach the {competition} final",
            "{athlete} sets new {sport} record in {city}",
            "{team} sack coach after {num} straight defeats",
            "Injury rules {athlete} out of {competition}",
            "{team2} stun {team} with late winner",
        ],
        sentences: &[
            "A late goal from {athlete} settled the match in front of a sell-out crowd in {city}.",
            "The win extends their unbeaten run to {num} games, the longest in the club's history.",
            "{athlete} finished {pct} seconds ahead of the field, breaking a mark set in {year}.",
            "The coach said the squad would regroup before {weekday}'s trip to face {team2}.",
            "Medical staff said the injury would need at least {num} weeks of rehabilitation.",
            "Fans had questioned the team's tactics after a run of poor results in the {competition}.",
        ],
    },
    Topic {
        name: "health",
        titles: &[
            "New {treatment} cuts risk of {disease} by {pct}% in trial",
            "{healthorg} warns of rise in {disease} cases across {region}",
            "Hospitals in {city} strain under winter surge of {disease}",
            "Study links poor sleep to higher risk of {disease}",
            "{country} approves {treatment} for patients with {disease}",
        ],
        sentences: &[
            "Researchers followed {num}00 patients for two years and found fewer hospital admissions in the treated group.",
            "The {healthorg} urged people at high risk to get vaccinated before the peak season.",
            "Doctors in {city} said emergency departments were operating above capacity for a third week.",
            "The findings, published in a peer-reviewed journal, still need to be confirmed in larger studies.",
            "{person}, a physician who was not involved in the research, called the results encouraging.",
            "Health officials said the {treatment} would be available through public clinics from {month}.",
        ],
    },
    Topic {
        name: "climate",
        titles: &[
            "{climateevent} forces thousands to evacuate in {region}",
            "{country} pledges to cut emissions {pct}% by {year2}",
            "Record heat in {city} strains power grid",
            "New {energy} farm off {region} begins supplying power",
            "Scientists warn glaciers in {region} are melting faster than expected",
        ],
        sentences: &[
            "Emergency services in {region} said more than {num}00 homes had been damaged.",
            "The government plans to phase out coal power and expand {energy} capacity by {year2}.",
            "Temperatures reached {num} degrees, the highest since records began in {city}.",
            "Campaigners said the targets fall short of what is needed to limit warming to 1.5C.",
            "{person}, a climate scientist, said events like the {climateevent} are becoming more frequent.",
            "The {energy} project is expected to power about {num}0,000 homes when complete.",
        ],
    },
    Topic {
        name: "science",
        titles: &[
            "Astronomers detect {spaceobject} in unprecedented detail",
            "Researchers at {institution} report breakthrough in {field}",
            "Fossil find in {country} rewrites history of early {creature}",
            "{agency} probe sends first images from {spaceobject}",
            "Physicists measure {quantity} with record precision",
        ],
        sentences: &[
            "The observations, made with a telescope in {country}, reveal structures never seen before.",
            "The team at {institution} spent {num} years refining the experiment.",
            "{person}, who led the study, said the result could reshape textbooks on {field}.",
            "The fossil is estimated to be {num} million years old and remarkably well preserved.",
            "The {agency} mission launched in {year} and travelled billions of kilometres to reach its target.",
            "Other groups will now try to reproduce the measurement independently.",
        ],
    },
    Topic {
        name: "education",
        titles: &[
            "Teachers in {region} strike over pay and class sizes",
            "{country} to overhaul {schoollevel} curriculum from {year2}",
            "University tuition fees in {country} to rise {pct}%",
            "Schools in {city} trial four-day week",
            "Report finds reading scores among {schoollevel} pupils have fallen",
        ],
        sentences: &[
            "Unions say {num}% of teachers in {region} have considered leaving the profession.",
            "The new curriculum places more emphasis on {edutopic} and less on memorisation.",
            "Student groups in {city} plan protests against the fee increase on {weekday}.",
            "{person}, the education minister, said the changes would be phased in over {num} years.",
            "The report, based on tests of {num}0,000 pupils, blamed lost classroom time and staff shortages.",
            "Parents were given until {month} to comment on the proposals.",
        ],
    },
    Topic {
        name: "entertainment",
        titles: &[
            "{film} tops box office with {money} opening weekend",
            "{artist} announces world tour starting in {city}",
            "{film} leads nominations for {award}",
            "Streaming service orders second season of {show}",
            "{artist} releases surprise {genre} album",
        ],
        sentences: &[
            "The film, directed by {person}, earned strong reviews after premiering at a festival in {city}.",
            "Tickets for the {num}-date tour go on sale on {weekday}.",
            "The {award} ceremony will be held in {month}, with the winners chosen by industry members.",
            "Critics praised the album's blend of {genre} and electronic influences.",
            "The first season of {show} was watched by {num} million households in its first month.",
            "The studio said the sequel had been in development since {year}.",
        ],
    },
    Topic {
        name: "finance",
        titles: &[
            "{centralbank} holds rates steady, signals cuts later this year",
            "{index} falls {pct}% as bond yields climb",
            "{asset} hits {year}-high as investors seek safety",
            "Inflation in {country} eases to {pct}% in {month}",
            "{index} closes at record high led by {sector} stocks",
        ],
        sentences: &[
            "Policymakers at the {centralbank} said inflation was moving towards target but risks remained.",
            "Traders in {city} pared bets on a rate cut after stronger-than-expected jobs data.",
            "{asset} prices have risen {pct}% since the start of the year.",
            "{person}, chief economist at a bank in {city}, expects two cuts before {year2}.",
            "Shares in the {sector} sector led the gains, while utilities lagged.",
            "The yield on ten-year government bonds rose to its highest level since {year}.",
        ],
    },
];

fn list(key: &str) -> &'static [&'static str] {
    match key {
        "city" => &[
            "London",
            "Paris",
            "Berlin",
            "Madrid",
            "Rome",
            "Tokyo",
            "Seoul",
            "Mumbai",
            "Lagos",
            "Nairobi",
            "Toronto",
            "Chicago",
            "Sydney",
            "Sao Paulo",
            "Mexico City",
            "Warsaw",
            "Stockholm",
            "Cairo",
            "Jakarta",
            "Denver",
        ],
        "country" => &[
            "Germany",
            "France",
            "Japan",
            "Brazil",
            "India",
            "Canada",
            "Australia",
            "Kenya",
            "Mexico",
            "Spain",
            "Italy",
            "South Korea",
            "Nigeria",
            "Poland",
            "Sweden",
            "Indonesia",
            "the United States",
            "the United Kingdom",
            "Chile",
            "Vietnam",
        ],
        "region" => &[
            "the north-east",
            "the Pacific coast",
            "Bavaria",
            "Catalonia",
            "Queensland",
            "Ontario",
            "the Alps",
            "the Midwest",
            "Patagonia",
            "the Rift Valley",
            "Scandinavia",
            "the Andes",
            "Kerala",
            "Provence",
        ],
        "person" => &[
            "Maria Lopez",
            "James Okafor",
            "Anna Schmidt",
            "Kenji Watanabe",
            "Priya Sharma",
            "David Chen",
            "Sofia Rossi",
            "Ahmed Hassan",
            "Emma Johansson",
            "Lucas Silva",
            "Chloe Martin",
            "Daniel Kowalski",
            "Grace Mwangi",
            "Oliver Brown",
            "Hana Kim",
        ],
        "weekday" => &["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
        "month" => {
            &["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
        }
        "num" => &["2", "3", "4", "5", "6", "7", "8", "9", "12", "14", "15", "18", "20", "25", "30", "40"],
        "pct" => &["0.4", "1.2", "1.8", "2.5", "3.1", "4.7", "5.5", "6.3", "8", "12", "15", "22", "35", "48", "61"],
        "money" => &[
            "$1.2 billion",
            "$450 million",
            "$3.8 billion",
            "EUR 900 million",
            "$75 million",
            "$12 billion",
            "GBP 2.1 billion",
            "$640 million",
        ],
        "year" => &["2015", "2017", "2018", "2019", "2020", "2021", "2022", "2023"],
        "year2" => &["2028", "2030", "2032", "2035", "2040", "2050"],
        "score" => &["2-1", "3-0", "1-0", "4-2", "3-2", "2-0", "105-98", "27-24"],
        "party" => &["Conservative", "Labour", "Green", "Liberal", "Social Democratic", "Christian Democratic", "Progressive", "Centrist"],
        "bill" => &[
            "a housing reform bill",
            "a new data privacy law",
            "a pension reform package",
            "an immigration bill",
            "a minimum wage increase",
            "an election reform bill",
            "a defence spending plan",
        ],
        "policy" => &[
            "pension reform",
            "immigration policy",
            "healthcare funding",
            "energy subsidies",
            "tax cuts",
            "public sector pay",
            "housing policy",
        ],
        "company" => &[
            "Northwind Industries",
            "Apex Motors",
            "Bluewater Foods",
            "Meridian Airlines",
            "Helios Retail",
            "Granite Steel",
            "Vantage Pharma",
            "Cobalt Logistics",
            "Summit Brewing",
            "Orion Textiles",
        ],
        "product" => &[
            "electric vans",
            "frozen meals",
            "budget flights",
            "home appliances",
            "steel beams",
            "sportswear",
            "generic drugs",
            "craft beer",
            "cargo services",
        ],
        "sector" => &["automotive", "retail", "energy", "banking", "technology", "healthcare", "consumer goods", "industrial", "travel"],
        "techco" => {
            &["Quantix", "Nimbus Cloud", "Pixelworks", "Arcadia Systems", "Byteforge", "Lumen Devices", "Corvid Networks", "Stellar Chips"]
        }
        "techproduct" => &["smartphone", "laptop", "smartwatch", "VR headset", "tablet", "home assistant", "AI accelerator chip"],
        "techtopic" => &[
            "generative AI",
            "quantum computing",
            "chip design",
            "cloud gaming",
            "autonomous driving",
            "data privacy",
            "open-source software",
            "battery technology",
        ],
        "device" => &["Android", "iPhone", "Windows", "smart TV", "router", "smartwatch"],
        "service" => &["email", "cloud storage", "video calls", "online payments", "messaging", "streaming"],
        "team" => &[
            "Riverside United",
            "Northgate Rovers",
            "the Harbor City Sharks",
            "Eastfield Athletic",
            "the Mountain Lions",
            "Real Costa",
            "FC Lindholm",
            "the Capital Eagles",
        ],
        "team2" => &["Westbrook Wanderers", "the Bay Hawks", "Southport City", "Atletico Sierra", "the Prairie Wolves", "Dynamo Kessel"],
        "athlete" => {
            &["Marcus Reid", "Elena Petrova", "Tomas Novak", "Aisha Bello", "Kai Tanaka", "Lena Fischer", "Diego Morales", "Sam Carter"]
        }
        "sport" => &["100m", "marathon", "swimming", "cycling", "pole vault", "rowing"],
        "competition" => &["Champions Cup", "national league", "World Championships", "Grand Slam", "continental cup", "playoffs"],
        "treatment" => {
            &["vaccine", "gene therapy", "blood pressure drug", "antiviral pill", "cancer immunotherapy", "weight-loss injection"]
        }
        "disease" => &["influenza", "measles", "type 2 diabetes", "heart disease", "dengue", "Alzheimer's disease", "RSV", "tuberculosis"],
        "healthorg" => &["World Health Organization", "national health agency", "public health institute", "medical association"],
        "climateevent" => &["wildfire", "flooding", "drought", "heatwave", "tropical storm", "landslide"],
        "energy" => &["offshore wind", "solar", "geothermal", "hydroelectric", "battery storage", "green hydrogen"],
        "spaceobject" => &[
            "a distant galaxy",
            "an exoplanet",
            "Jupiter's moon Europa",
            "a black hole",
            "a comet",
            "the far side of the Moon",
            "an asteroid",
        ],
        "institution" => &[
            "the University of Oslo",
            "MIT",
            "ETH Zurich",
            "the University of Tokyo",
            "Imperial College",
            "the Max Planck Institute",
            "Stanford",
        ],
        "field" => &[
            "superconductivity",
            "gene editing",
            "battery chemistry",
            "particle physics",
            "neuroscience",
            "materials science",
            "ocean biology",
        ],
        "creature" => &["birds", "mammals", "dinosaurs", "fish", "primates", "insects"],
        "agency" => &["NASA", "ESA", "JAXA", "ISRO"],
        "quantity" => &["the mass of the neutrino", "the gravitational constant", "the proton radius", "the muon's magnetic moment"],
        "schoollevel" => &["primary school", "secondary school", "high school", "early years"],
        "edutopic" => &["critical thinking", "computer science", "financial literacy", "climate education", "foreign languages"],
        "film" => &["Midnight Harbor", "The Last Orbit", "Paper Kingdoms", "Silent Current", "Golden Hour", "Iron Meadow"],
        "artist" => &["Nova Reyes", "The Velvet Lines", "Jonah Hale", "Mira Sol", "Echo Park Kids", "Luca Bianchi"],
        "award" => &["the Golden Reel awards", "the national film awards", "the music industry awards", "the critics' choice prizes"],
        "show" => &["The Lighthouse", "Northern Lights", "City of Glass", "The Long Road"],
        "genre" => &["jazz", "folk", "hip-hop", "synth-pop", "country", "rock"],
        "centralbank" => &["Federal Reserve", "European Central Bank", "Bank of England", "Bank of Japan", "Reserve Bank"],
        "index" => &["The S&P 500", "The FTSE 100", "The Nikkei 225", "The DAX", "The Nasdaq Composite", "The Stoxx 600"],
        "asset" => &["Gold", "Silver", "The dollar", "The yen", "Bitcoin", "Copper"],
        _ => &["something"],
    }
}

/// Replaces every `{key}` with a word from `list(key)`.
fn fill(template: &str, rng: &mut Rng) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push_str(rng.pick(list(&after[..end])));
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn capitalize(s: String) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) if f.is_lowercase() => f.to_uppercase().chain(c).collect(),
        _ => s,
    }
}

/// Article `n` of generator `seed`, and its topic.
pub fn article(seed: u64, n: u64) -> (Article, &'static str) {
    let mut rng = Rng::new(seed ^ n.wrapping_add(1).wrapping_mul(0xd6e8_feb8_6659_fd93));
    rng.next_u64();
    let topic = &TOPICS[rng.below(TOPICS.len())];
    let title = capitalize(fill(rng.pick(topic.titles), &mut rng));
    let count = 2 + rng.below(2);
    let mut chosen: Vec<usize> = Vec::with_capacity(count);
    while chosen.len() < count.min(topic.sentences.len()) {
        let i = rng.below(topic.sentences.len());
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    let text = chosen.iter().map(|&i| capitalize(fill(topic.sentences[i], &mut rng))).collect::<Vec<_>>().join(" ");
    let id = format!("syn-{seed}-{n}");
    (Article::build(&[Some(&id)], &title, &text, None, "synthetic", None), topic.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_varied() {
        let a = article(7, 3).0;
        assert_eq!(a, article(7, 3).0);
        assert_eq!(a.id, "syn-7-3");
        assert_ne!(a.title, article(8, 3).0.title);
        let mut topics = std::collections::HashSet::new();
        let mut titles = std::collections::HashSet::new();
        for n in 0..500 {
            let (a, t) = article(1, n);
            assert!(!a.title.is_empty() && a.text.len() > 40, "{a:?}");
            assert!(!a.title.contains('{') && !a.text.contains('{'), "{a:?}");
            assert!(!a.text.contains("something"), "a placeholder without a list: {a:?}");
            topics.insert(t);
            titles.insert(a.title);
        }
        assert_eq!(topics.len(), TOPICS.len());
        assert!(titles.len() > 400, "{}", titles.len());
    }
}
