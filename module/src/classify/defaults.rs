//! The default topics: the reference pipeline's ten, each described the way a news editor would
//! describe the section. Descriptions are split into sentences, each embedded on its own (see
//! `scorer`), so each sentence names one facet of the topic.

pub const TOPICS: [(&str, &str); 10] = [
    (
        "politics",
        "Politics and government: elections, campaigns, voters and political parties. \
         Presidents, prime ministers, parliaments and congress passing laws and debating policy. \
         Diplomacy, international relations, treaties, wars, conflicts and summits between countries.",
    ),
    (
        "business",
        "Business news about companies, corporations and industries. \
         Earnings, profits, sales, mergers, acquisitions, layoffs and chief executives. \
         Retailers, airlines, carmakers, manufacturers and the economy, jobs and trade.",
    ),
    (
        "technology",
        "Technology news: computers, software, the internet and smartphones. \
         Tech companies such as Microsoft, Apple, Google and Intel and their new products. \
         Artificial intelligence, cybersecurity, hackers, chips, gadgets and video games.",
    ),
    (
        "sports",
        "Sports news: games, matches, scores and results. \
         Football, soccer, basketball, baseball, tennis, golf, cricket and the Olympics. \
         Teams, players, coaches, leagues, championships, tournaments and transfers.",
    ),
    (
        "health",
        "Health and medicine: diseases, patients, doctors and hospitals. \
         Drugs, vaccines, treatments, clinical trials and public health outbreaks. \
         Nutrition, fitness, mental health and health care systems.",
    ),
    (
        "climate",
        "Climate and environment: global warming, greenhouse gas emissions and carbon. \
         Extreme weather, heat waves, floods, droughts, wildfires and hurricanes. \
         Renewable energy, solar and wind power, pollution, conservation and climate policy.",
    ),
    (
        "science",
        "Science news: research, discoveries and scientific studies. \
         Space exploration, NASA, astronomy, planets and rockets. \
         Physics, biology, chemistry, genetics, fossils and animals studied by researchers.",
    ),
    (
        "education",
        "Education news about schools, teachers and students. \
         Universities, colleges, tuition, exams, admissions and degrees. \
         Education policy, school funding, classrooms, learning and literacy.",
    ),
    (
        "entertainment",
        "Entertainment news: movies, films, television shows and streaming. \
         Music, albums, concerts, celebrities, actors and singers. \
         Hollywood, box office, awards, books, art and culture.",
    ),
    (
        "finance",
        "Finance and markets: stocks, shares, bonds and currencies. \
         Wall Street, investors, banks, interest rates and central banks. \
         Oil prices, commodities, inflation, loans, mortgages and personal finance.",
    ),
];
