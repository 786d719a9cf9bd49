//! The synthetic articles' content: per topic the stories, and the word lists their
//! `{placeholders}` are filled from.

/// One story: the title, the lead and the body sentences tell the same news. Every `{key}` of a
/// story takes one value per article, so the company in the title is the company in the body.
pub struct Story {
    pub title: &'static str,
    pub lead: &'static str,
    pub body: &'static [&'static str],
}

pub struct Topic {
    pub name: &'static str,
    pub stories: &'static [Story],
}

pub const TOPICS: &[Topic] = &[
    Topic {
        name: "politics",
        stories: &[
            Story {
                title: "{party} lawmakers unveil {bill} ahead of {month} vote",
                lead: "{party} lawmakers in {country} presented {bill} on {weekday}, setting up a vote in {month}.",
                body: &[
                    "The proposal would overhaul {policy} for the first time in {num} years, its authors said.",
                    "Opposition members called the measure rushed and vowed to challenge it in court.",
                    "{person}, a senior adviser to the party, said it was confident it had the numbers.",
                    "Polls published this week suggest {pct}% of voters support the plan.",
                ],
            },
            Story {
                title: "{pmcountry} prime minister faces confidence vote over {policy}",
                lead: "The prime minister of {pmcountry} will face a confidence vote on {weekday} after a revolt over {policy}.",
                body: &[
                    "Several {party} members of parliament said they could no longer back the government's approach.",
                    "The dispute began when ministers announced changes to {policy} without consulting the coalition.",
                    "{person}, the government's chief whip, said the prime minister expected to survive the vote.",
                    "If the government falls, an election could be held as early as {month}.",
                ],
            },
            Story {
                title: "Coalition talks in {country} stall over {policy}",
                lead: "Talks on forming a new government in {country} broke down on {weekday} over {policy}.",
                body: &[
                    "The {party} party insisted on changes that its likely partners have rejected.",
                    "{person}, who is leading the negotiations, said the parties would meet again next week.",
                    "The country has been governed by a caretaker cabinet since the election in {month}.",
                ],
            },
            Story {
                title: "Governor of {region} signs {bill} into law",
                lead: "The governor of {region} signed {bill} into law on {weekday}, ending months of debate.",
                body: &[
                    "Supporters say the law will change {policy} across the region within {num} years.",
                    "Critics argue the changes will cost taxpayers {money} over the next decade.",
                    "{person}, who campaigned against the bill, said opponents were considering a legal challenge.",
                ],
            },
        ],
    },
    Topic {
        name: "business",
        stories: &[
            Story {
                title: "{company} to cut {num}00 jobs as demand for {product} slows",
                lead: "{company} will cut {num}00 jobs after demand for its {product} fell for a third quarter, the company said on {weekday}.",
                body: &[
                    "The restructuring will close plants in {region} and move some production to {country}.",
                    "Unions representing {company} workers called the decision a betrayal and threatened strikes.",
                    "Executives said the cuts would save {money} a year from {year2}.",
                    "Shares in {company} rose {pct}% in early trading after the announcement.",
                ],
            },
            Story {
                title: "{company} agrees to buy rival in {money} deal",
                lead: "{company} has agreed to buy a smaller rival for {money}, creating one of the largest groups in the {sector} sector.",
                body: &[
                    "The deal still needs approval from competition regulators in {country}.",
                    "{person}, the chief executive of {company}, said the combination would cut costs and widen its range of {product}.",
                    "Analysts in {city} said the price was high but the logic of the deal was sound.",
                ],
            },
            Story {
                title: "{company} shares jump after quarterly profit beats forecasts",
                lead: "Shares in {company} jumped {pct}% after the company reported quarterly revenue of {money}, well above forecasts.",
                body: &[
                    "Strong sales of {product} offset rising costs, {company} said.",
                    "Analysts in {city} had expected a weaker quarter amid rising costs across the {sector} sector.",
                    "Executives said supply problems that hit {product} last year have largely eased.",
                ],
            },
            Story {
                title: "{company} names {person} as new chief executive",
                lead: "{company} has named {person} as chief executive, ending a search that began in {month}.",
                body: &[
                    "{person} has led the group's {sector} division since {year} and will take over on {weekday}.",
                    "The outgoing chief executive oversaw a difficult period as demand for {product} fell.",
                    "Investors welcomed the appointment, sending {company} shares up {pct}%.",
                ],
            },
        ],
    },
    Topic {
        name: "technology",
        stories: &[
            Story {
                title: "{techco} unveils {techproduct} with on-device AI features",
                lead: "{techco} unveiled a new {techproduct} on {weekday} that runs AI features without sending data to the cloud.",
                body: &[
                    "The {techproduct} uses a custom chip that {techco} says is {num}% faster than its predecessor.",
                    "{person}, an analyst who covers the industry, said the launch puts pressure on rivals.",
                    "The device goes on sale in {month}, starting in {country}.",
                ],
            },
            Story {
                title: "{techco} fixes security flaw affecting millions of {device} users",
                lead: "{techco} has released a fix for a security flaw that left millions of {device} users exposed to attackers.",
                body: &[
                    "Researchers in {city} reported the vulnerability to {techco} in {month}.",
                    "The company said it had no evidence that the flaw had been used in attacks.",
                    "The update will reach older {device} models over the coming weeks.",
                ],
            },
            Story {
                title: "Startup building {techtopic} raises {money}",
                lead: "A startup in {city} working on {techtopic} has raised {money} from investors.",
                body: &[
                    "The company says its approach to {techtopic} could cut data-centre energy use by {pct}%.",
                    "{person}, its co-founder, said the money would be used to triple the engineering team.",
                    "Investment in {techtopic} has risen sharply since {year}.",
                ],
            },
            Story {
                title: "{techco} outage disrupts {service} for hours",
                lead: "Millions of people could not use {techco}'s {service} for several hours on {weekday}.",
                body: &[
                    "Engineers traced the outage to a faulty configuration change, {techco} said.",
                    "Businesses in {country} that rely on the {service} reported lost sales.",
                    "{techco} apologised and said it would review how changes are rolled out.",
                ],
            },
        ],
    },
    Topic {
        name: "sports",
        stories: &[
            Story {
                title: "{team} beat {team2} {score} to reach the {competition} final",
                lead: "{team} beat {team2} {score} in {city} on {weekday} to reach the final of the {competition}.",
                body: &[
                    "A late goal from {athlete} settled the match in front of a sell-out crowd.",
                    "The win extends the club's unbeaten run to {num} games.",
                    "{team2} had led at half-time but faded after an early injury to their captain.",
                ],
            },
            Story {
                title: "{athlete} sets new {sport} record in {city}",
                lead: "{athlete} set a new {sport} record at a meeting in {city} on {weekday}.",
                body: &[
                    "{athlete} finished {pct} seconds ahead of the field, breaking a mark set in {year}.",
                    "The record came only months after a long injury layoff.",
                    "Organisers said the result would be ratified once routine checks are complete.",
                ],
            },
            Story {
                title: "{team} sack coach after {num} straight defeats",
                lead: "{team} sacked their head coach on {weekday} after a run of {num} straight defeats.",
                body: &[
                    "Fans had questioned the team's tactics after poor results in the {competition}.",
                    "An assistant will take charge for {weekday}'s trip to face {team2}.",
                    "The club said it hoped to appoint a permanent replacement by {month}.",
                ],
            },
            Story {
                title: "Injury rules {athlete} out of {competition}",
                lead: "{athlete} will miss the {competition} after injuring a knee in training.",
                body: &[
                    "Medical staff said the injury would need at least {num} weeks of rehabilitation.",
                    "{athlete} had been one of the favourites for the title.",
                    "{team} said they would not rush their player back before the end of the season.",
                ],
            },
        ],
    },
    Topic {
        name: "health",
        stories: &[
            Story {
                title: "New {treatment} cuts risk of {disease} by {pct}% in trial",
                lead: "A new {treatment} cut the risk of {disease} by {pct}% in a large trial, researchers reported.",
                body: &[
                    "Researchers followed {num}00 patients for two years and found fewer hospital admissions in the treated group.",
                    "The findings, published in a peer-reviewed journal, still need to be confirmed in larger studies.",
                    "{person}, a physician who was not involved in the research, called the results encouraging.",
                ],
            },
            Story {
                title: "{healthorg} warns of rise in {infection} cases across {region}",
                lead: "The {healthorg} has warned of a sharp rise in {infection} cases across {region}.",
                body: &[
                    "Cases have risen {pct}% since {month}, according to figures released on {weekday}.",
                    "The {healthorg} urged people at high risk to seek medical advice early.",
                    "{person}, an epidemiologist, said lower vaccination rates had contributed to the rise.",
                ],
            },
            Story {
                title: "Hospitals in {city} strain under winter surge of {infection}",
                lead: "Hospitals in {city} are struggling to cope with a winter surge of {infection}.",
                body: &[
                    "Doctors said emergency departments had been operating above capacity for a third week.",
                    "Some planned operations have been postponed to free beds for {infection} patients.",
                    "Health officials said extra staff would be sent to {city} from neighbouring regions.",
                ],
            },
            Story {
                title: "{country} approves {treatment} for patients with {disease}",
                lead: "Regulators in {country} have approved a {treatment} for patients with {disease}.",
                body: &[
                    "The decision follows trials in which patients on the {treatment} did markedly better.",
                    "Health officials said the {treatment} would be available through public clinics from {month}.",
                    "Patient groups welcomed the approval but warned about its price of {drugprice} per patient a year.",
                ],
            },
        ],
    },
    Topic {
        name: "climate",
        stories: &[
            Story {
                title: "{climateevent} forces thousands to evacuate in {region}",
                lead: "Thousands of people have been ordered to leave their homes as {climateevent} spreads across {region}.",
                body: &[
                    "Emergency services in {region} said more than {num}00 homes had been damaged.",
                    "{person}, a climate scientist, said such events are becoming more frequent as the planet warms.",
                    "Officials said it could be weeks before residents are allowed to return.",
                ],
            },
            Story {
                title: "{country} pledges to cut emissions {pct}% by {year2}",
                lead: "{country} has pledged to cut its greenhouse gas emissions by {pct}% by {year2}.",
                body: &[
                    "The government plans to phase out coal power and expand {energy} capacity.",
                    "Campaigners said the target falls short of what is needed to limit warming to 1.5C.",
                    "{person}, the environment minister, said the plan would create thousands of jobs.",
                ],
            },
            Story {
                title: "Record heat in {city} strains power grid",
                lead: "Temperatures in {city} reached {hightemp} degrees Celsius on {weekday}, the highest since records began.",
                body: &[
                    "The grid operator asked residents to cut electricity use in the evening peak.",
                    "Doctors warned older people to stay indoors during the hottest hours.",
                    "Forecasters expect the heat to last until the end of the week.",
                ],
            },
            Story {
                title: "New {energy} farm off {region} begins supplying power",
                lead: "A new {energy} farm off {region} has started supplying electricity to the grid.",
                body: &[
                    "The project is expected to power about {num}0,000 homes when complete.",
                    "It cost {money} to build and took {num} years from planning to first power.",
                    "{person}, who runs the project, said a second phase was being planned.",
                ],
            },
        ],
    },
    Topic {
        name: "science",
        stories: &[
            Story {
                title: "Astronomers capture {spaceobject} in unprecedented detail",
                lead: "Astronomers have captured {spaceobject} in more detail than ever before.",
                body: &[
                    "The observations, made with a telescope in {country}, reveal structures never seen before.",
                    "{person}, who led the study, said the images would keep researchers busy for years.",
                    "Other observatories will now try to confirm the findings.",
                ],
            },
            Story {
                title: "Researchers at {institution} report breakthrough in {field}",
                lead: "Researchers at {institution} say they have made a breakthrough in {field}.",
                body: &[
                    "The team spent {num} years refining the experiment before publishing the result.",
                    "{person}, who led the study, said it could reshape textbooks on {field}.",
                    "Other groups will now try to reproduce the result independently.",
                ],
            },
            Story {
                title: "Fossil find in {country} rewrites history of early {creature}",
                lead: "A fossil found in {country} suggests that early {creature} appeared much earlier than thought.",
                body: &[
                    "The fossil is estimated to be {num} million years old and remarkably well preserved.",
                    "{person}, a palaeontologist at {institution}, said the find fills a long-standing gap.",
                    "The specimen will go on display at a museum in {city} next year.",
                ],
            },
            Story {
                title: "{agency} probe sends first close-up images of {probetarget}",
                lead: "A {agency} probe has sent back its first close-up images of {probetarget}.",
                body: &[
                    "The mission launched in {year} and travelled billions of kilometres to reach its target.",
                    "Scientists at {agency} said the images were sharper than they had hoped.",
                    "{person}, the mission's lead scientist, said more data would arrive over the coming months.",
                ],
            },
        ],
    },
    Topic {
        name: "education",
        stories: &[
            Story {
                title: "Teachers in {region} strike over pay and class sizes",
                lead: "Teachers across {region} walked out on {weekday} in a dispute over pay and class sizes.",
                body: &[
                    "Unions say {num}% of teachers in {region} have considered leaving the profession.",
                    "Most schools in the region were closed or open only to some year groups.",
                    "{person}, the education minister, said the government's offer was fair and final.",
                ],
            },
            Story {
                title: "{country} to overhaul {schoollevel} curriculum from {year2}",
                lead: "{country} will overhaul its {schoollevel} curriculum from {year2}, the government said.",
                body: &[
                    "The new curriculum places more emphasis on {edutopic} and less on memorisation.",
                    "{person}, the education minister, said the changes would be phased in over {num} years.",
                    "Parents were given until {month} to comment on the proposals.",
                ],
            },
            Story {
                title: "University tuition fees in {country} to rise {pct}%",
                lead: "Tuition fees at universities in {country} will rise by {pct}% from next year.",
                body: &[
                    "Universities said the increase was needed to cover rising costs.",
                    "Student groups plan protests in the capital against the increase on {weekday}.",
                    "{person}, who speaks for the student union, said many would be priced out.",
                ],
            },
            Story {
                title: "Report finds reading scores among {schoollevel} pupils have fallen",
                lead: "Reading scores among {schoollevel} pupils in {country} have fallen, a national report found.",
                body: &[
                    "The report, based on tests of {num}0,000 pupils, blamed lost classroom time and staff shortages.",
                    "{person}, the report's author, called for more support for struggling readers.",
                    "The government said it would publish a plan to improve literacy by {month}.",
                ],
            },
        ],
    },
    Topic {
        name: "entertainment",
        stories: &[
            Story {
                title: "{film} tops box office with {money} opening weekend",
                lead: "{film} took {money} in its opening weekend, the biggest start of the year.",
                body: &[
                    "The film, directed by {person}, earned strong reviews after premiering at a festival in {city}.",
                    "Audiences were drawn by word of mouth as much as by the marketing, the studio said.",
                    "The studio said a sequel to {film} had been in development since {year}.",
                ],
            },
            Story {
                title: "{artist} announces world tour starting in {city}",
                lead: "{artist} will start a world tour in {city} in {month}.",
                body: &[
                    "Tickets for the {num}-date tour go on sale on {weekday}.",
                    "The tour follows the release of a {genre} album that topped charts in {country}.",
                    "{artist} last toured in {year}.",
                ],
            },
            Story {
                title: "{film} leads nominations for {award}",
                lead: "{film} received the most nominations for {award}, announced on {weekday}.",
                body: &[
                    "The film, directed by {person}, is nominated in {num} categories.",
                    "The ceremony will be held in {month}, with the winners chosen by industry members.",
                    "{film} has been a surprise success since its release in {country}.",
                ],
            },
            Story {
                title: "{artist} releases surprise {genre} album",
                lead: "{artist} released a surprise {genre} album on {weekday} with no advance warning.",
                body: &[
                    "Critics praised the album's blend of {genre} and electronic influences.",
                    "It is the first new music from {artist} since {year}.",
                    "The album was recorded over {num} weeks in {city}, according to the sleeve notes.",
                ],
            },
        ],
    },
    Topic {
        name: "finance",
        stories: &[
            Story {
                title: "{centralbank} holds rates steady, signals cuts later this year",
                lead: "The {centralbank} kept interest rates unchanged on {weekday} but signalled cuts later in the year.",
                body: &[
                    "Policymakers said inflation was moving towards target but risks remained.",
                    "Traders in {city} pared bets on an early cut after stronger-than-expected jobs data.",
                    "{person}, chief economist at a bank in {city}, expects two cuts before {year2}.",
                ],
            },
            Story {
                title: "{index} falls {pct}% as bond yields climb",
                lead: "{index} fell {pct}% on {weekday} as government bond yields rose.",
                body: &[
                    "The yield on ten-year government bonds rose to its highest level since {year}.",
                    "Shares in the {sector} sector led the losses, while utilities held up.",
                    "{person}, a strategist in {city}, said investors were reassessing how long rates would stay high.",
                ],
            },
            Story {
                title: "{asset} hits highest level since {year} as investors seek safety",
                lead: "{asset} rose to its highest level since {year} as investors looked for safe places for their money.",
                body: &[
                    "Prices have risen {pct}% since the start of the year.",
                    "Traders in {city} pointed to uncertainty over growth and interest rates.",
                    "{person}, an analyst, said demand could stay strong until the outlook clears.",
                ],
            },
            Story {
                title: "Inflation in {country} eases to {pct}% in {month}",
                lead: "Inflation in {country} eased to {pct}% in {month}, official figures showed on {weekday}.",
                body: &[
                    "Lower energy prices did most of the work, while food prices kept rising.",
                    "Economists said the figures make a rate cut by the central bank more likely.",
                    "{person}, the finance minister, said the government's plan was working.",
                ],
            },
        ],
    },
];

/// The words a `{key}` placeholder is filled from.
pub fn list(key: &str) -> &'static [&'static str] {
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
        "pmcountry" => &["the United Kingdom", "Canada", "Australia", "Japan", "India", "Italy", "Spain", "Poland", "Sweden"],
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
        "hightemp" => &["38", "39", "41", "42", "44", "46"],
        "drugprice" => &["$12,000", "EUR 8,500", "$30,000", "GBP 6,000", "$45,000"],
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
        "treatment" => &["drug", "once-a-day pill", "weekly injection", "gene therapy", "combination therapy"],
        "disease" => &["type 2 diabetes", "heart disease", "Alzheimer's disease", "stroke", "kidney disease", "asthma", "migraine"],
        "infection" => &["influenza", "measles", "RSV", "norovirus", "whooping cough", "COVID-19"],
        "healthorg" => &["World Health Organization", "national health agency", "public health institute", "medical association"],
        "climateevent" => &["a wildfire", "severe flooding", "a tropical storm", "rising floodwater"],
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
        "probetarget" => &["Jupiter's moon Europa", "a comet", "the far side of the Moon", "an asteroid", "Mars", "Saturn's rings"],
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
