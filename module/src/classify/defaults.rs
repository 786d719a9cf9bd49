//! The default topics: the reference pipeline's ten, each described the way a news editor would
//! describe the section. Each sentence is embedded on its own (see `scorer::facets`), so each
//! names one facet of the topic. Written and checked against held-out news, not tuned on a test set.

pub const TOPICS: [(&str, &str); 10] = [
    (
        "politics",
        "Politics, government and world affairs. \
         Elections, political parties, candidates and campaigns. \
         Lawmakers and parliaments debating and passing legislation. \
         Presidents, prime ministers, diplomacy, international relations, wars and peace talks.",
    ),
    (
        "business",
        "Business and companies. \
         Corporate news about earnings, sales, mergers, acquisitions and layoffs. \
         Industries such as retail, manufacturing, energy, airlines and carmakers, and the executives who run them. \
         Startups, competition, trade and the wider economy.",
    ),
    (
        "technology",
        "Technology and the tech industry. \
         Computers, smartphones, software, apps, the internet and social media. \
         Artificial intelligence, cybersecurity, chips and gadgets. \
         Technology companies and the new products they launch.",
    ),
    (
        "sports",
        "Sports news. \
         Games, matches, races and tournaments, with results and scores. \
         Athletes, teams, coaches, leagues and championships. \
         Football, soccer, basketball, baseball, tennis, golf and the Olympics.",
    ),
    (
        "health",
        "Health and medicine. \
         Diseases, treatments, drugs, vaccines and medical research. \
         Hospitals, doctors, patients and public health. \
         Nutrition, fitness and mental health.",
    ),
    (
        "climate",
        "Climate change and the environment. \
         Global warming, greenhouse gas emissions and climate policy. \
         Extreme weather such as heatwaves, droughts, floods and wildfires. \
         Renewable energy, pollution, conservation and wildlife.",
    ),
    (
        "science",
        "Science and research. \
         Discoveries and studies by scientists in physics, chemistry, biology and astronomy. \
         Space exploration, planets and telescopes. \
         Archaeology, fossils, evolution and the natural world.",
    ),
    (
        "education",
        "Education, schools and universities. \
         Teachers, students, classrooms, exams and curricula. \
         Colleges, tuition, student loans and admissions. \
         Education policy and school funding.",
    ),
    (
        "entertainment",
        "Entertainment and culture. \
         Movies, television, streaming, music, books and the arts. \
         Celebrities, actors, musicians, concerts and award shows. \
         Box office hits, video games and pop culture.",
    ),
    (
        "finance",
        "Finance and markets. \
         Stock markets, shares, bonds, currencies and commodities such as oil and gold. \
         Interest rates, inflation and central banks. \
         Banks, investors, funds, personal finance, savings and cryptocurrencies.",
    ),
];
