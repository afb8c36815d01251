-- Generated, then removed from the journal: Drizzle never runs it.
CREATE TABLE "left_behind" (id int);
